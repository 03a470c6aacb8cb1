# Sourced by test/quickstart.sh and test/run_all.sh: as_root runs a command
# as root, through sudo only when the caller is not root already, so the
# README's commands work as written both on a fresh Debian machine used as
# root (which has no sudo) and for a user with sudo rights.

# Run "$@" as root; fail with a clear message when that is not possible.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -- "$@"
	else
		echo "$(basename "$0"): '$*' needs root: run this script as root, or install sudo" >&2
		return 1
	fi
}
