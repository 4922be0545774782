"""The `marlin` command: Marlin's own commands plus every Django management command.

marlin serve [ADDR:PORT]     migrate if needed, run the web app and a job worker
marlin demo                  the same, with demo data loaded; prints the demo logins
marlin worker                run a job worker
marlin createuser NAME --role annotator [--role reviewer]
marlin repos import FILE     import repositories (plain list, CSV or JSON lines)
marlin import swebench-tasks FILE / predictions FILE
marlin export ...            write dataset exports
marlin audit checkpoint      sign the audit chain's head into the checkpoint file
marlin audit verify          verify the keyed audit chain against the checkpoints
marlin backup DEST           dump the database, exports and checkpoints (never a key)
marlin restore SRC           restore a backup into an empty database and data directory
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marlin.settings")
    from django.core.management import execute_from_command_line

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        args = ["help"]
    execute_from_command_line(["marlin", *args])


if __name__ == "__main__":
    main()
