#!/usr/bin/env bash
# The command-line agents Marlin's CLI tests run and its shipped agent definitions name: Claude
# Code and Codex CLI (npm), aider and mini-swe-agent (PyPI), pinned, into a tools directory that
# the worker mounts read-only at /opt/agent-tools in the sandbox. Never into Marlin's own venv:
# aider pins its own openai, litellm and numpy. Idempotent and cached: each part is rebuilt only
# when its pinned versions change (a stamp file records them), and a lock keeps two `make test`
# runs from building at once.
#
#   scripts/agent-clis.sh   # into $MARLIN_AGENT_TOOLS_DIR, default ~/.cache/marlin/agent-tools
#
# Outside the work tree, so that a fresh clone (CI) finds the machine's copy and skips the
# minutes of downloads (measured: 20 s for the npm part, 160 s aider, 197 s mini-swe-agent).
#
# Layout: npm/ (node_modules), aider/ and mini/ (venvs over Debian's /usr/bin/python3, which the
# sandbox binds), bin/ (what goes on the sandbox's PATH: relative links for the npm CLIs, small
# wrappers that run the venvs' modules, so nothing depends on the host path of the build).
set -euo pipefail

CLAUDE_CODE_VERSION=2.1.332
CODEX_VERSION=0.171.0
AIDER_VERSION=0.86.2
MINI_SWE_AGENT_VERSION=2.4.6
MOUNT=/opt/agent-tools  # where marlin mounts the directory inside the sandbox

TOOLS="${MARLIN_AGENT_TOOLS_DIR:-$HOME/.cache/marlin/agent-tools}"
mkdir -p "$TOOLS/bin"
exec 9>"$TOOLS/.lock"
flock 9

stamp_ok() { [ -f "$TOOLS/$1/.marlin-stamp" ] && [ "$(cat "$TOOLS/$1/.marlin-stamp")" = "$2" ]; }
took() { echo "agent-clis: $1 installed in $(($(date +%s) - $2)) s"; }

npm_want="claude-code=$CLAUDE_CODE_VERSION codex=$CODEX_VERSION"
if ! stamp_ok npm "$npm_want"; then
  if ! command -v npm >/dev/null; then
    echo "agent-clis: npm is missing (apt-get install npm)" >&2
    exit 1
  fi
  start=$(date +%s)
  rm -rf "$TOOLS/npm"
  mkdir -p "$TOOLS/npm"
  # Claude Code's postinstall only copies its platform package's binary over a stub; npm 11 skips
  # install scripts it was not told to allow, and the binary is linked in below either way.
  npm install --prefix "$TOOLS/npm" --no-audit --no-fund --omit=dev --loglevel=error \
    "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" "@openai/codex@$CODEX_VERSION"
  echo "$npm_want" >"$TOOLS/npm/.marlin-stamp"
  took "Claude Code $CLAUDE_CODE_VERSION and Codex CLI $CODEX_VERSION" "$start"
fi
claude_stub="$TOOLS/npm/node_modules/@anthropic-ai/claude-code/bin/claude.exe"
claude_native="$TOOLS/npm/node_modules/@anthropic-ai/claude-code-linux-x64/claude"
if [ -f "$claude_native" ] && [ -f "$claude_stub" ] \
  && [ "$(stat -c %s "$claude_stub")" -lt 1000000 ]; then
  cp "$claude_native" "$claude_stub"  # what the skipped postinstall does
fi
ln -sfn ../npm/node_modules/.bin/claude "$TOOLS/bin/claude"
ln -sfn ../npm/node_modules/.bin/codex "$TOOLS/bin/codex"

python_tool() {  # python_tool DIR "PACKAGE==VERSION" MODULE COMMAND
  local dir=$1 requirement=$2 module=$3 command=$4
  if ! stamp_ok "$dir" "$requirement"; then
    start=$(date +%s)
    rm -rf "${TOOLS:?}/$dir"
    /usr/bin/python3 -m venv "$TOOLS/$dir"
    "$TOOLS/$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
      "$requirement"
    echo "$requirement" >"$TOOLS/$dir/.marlin-stamp"
    took "$requirement" "$start"
  fi
  printf '#!/bin/sh\nexec %s/%s/bin/python -m %s "$@"\n' "$MOUNT" "$dir" "$module" \
    >"$TOOLS/bin/$command"
  chmod 755 "$TOOLS/bin/$command"
}
python_tool aider "aider-chat==$AIDER_VERSION" aider aider
python_tool mini "mini-swe-agent==$MINI_SWE_AGENT_VERSION" minisweagent.run.mini mini

echo "$npm_want aider-chat=$AIDER_VERSION mini-swe-agent=$MINI_SWE_AGENT_VERSION" \
  >"$TOOLS/versions.txt"
