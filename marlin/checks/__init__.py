"""The checks app: check results of candidates, the jobs that run them in the sandbox (through
the plain `marlin.grading` package), re-runs and their pages."""
