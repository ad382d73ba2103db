# Sourced by the scripts: need_deb COMMAND [PACKAGE] installs Debian's
# PACKAGE (COMMAND's name by default) when COMMAND is missing, with apt as
# root or through sudo.
need_deb() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local pkg=${2:-$1} sudo=""
  echo "== installing Debian's $pkg"
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg" >/dev/null
}
