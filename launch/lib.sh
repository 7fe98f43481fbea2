# Shared by the launch scripts, sourced once the repository is known:
#   . "$repo/launch/lib.sh"
# Defines `run` (runs a command, or prints it under DRY_RUN=1) and
# `enter_repo NAME REPO WORKDIR`, which sets `workdir` to an absolute path
# (a relative local one is taken from the folder the script started in; a
# URI such as gs://bucket/run is left as it is), changes into REPO and
# activates its .venv if there is one.

# run CMD...: runs it, or prints it (shell-quoted) under DRY_RUN=1.
run() {
  if [[ ${DRY_RUN:-0} == 1 ]]; then
    local quoted; printf -v quoted '%q ' "$@"; echo "${quoted% }"
  else
    "$@"
  fi
}

enter_repo() {
  local name=$1 repo=$2
  workdir=$3
  if [[ $workdir != /* && $workdir != *://* ]]; then
    workdir=$PWD/$workdir
  fi
  run cd "$repo"
  cd "$repo"   # under DRY_RUN too, to look for its .venv
  if [[ -f .venv/bin/activate ]]; then
    run . .venv/bin/activate
  else
    echo "$name: no $repo/.venv; using $(command -v python || echo python)" \
      "from PATH." >&2
  fi
}
