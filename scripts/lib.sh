# Shared helpers for certctl's scripts: stage timing and installing what tests need.
# Sourced, not executed.

stage_start() {
  STAGE_NAME="$1"
  STAGE_T0=$(date +%s)
  echo "==> [$STAGE_NAME] start ($(date -u +%H:%M:%S))"
}

stage_end() {
  local t1
  t1=$(date +%s)
  echo "==> [$STAGE_NAME] done in $((t1 - STAGE_T0)) s"
}

apt_updated=0
apt_install() {
  # Installs Debian packages that are missing; runs apt-get update once per script run.
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ $apt_updated -eq 0 ]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

port_answers() {
  # True when something accepts TCP connections on 127.0.0.1:$1.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

ensure_postgres() {
  # The PostgreSQL suite needs a server on 127.0.0.1:5432 and the server binaries
  # (the readiness test runs a private cluster it can stop and start).
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt_install postgresql
  fi
  if ! port_answers 5432; then
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$version" ]; then
      apt_install postgresql
      version=$(ls /etc/postgresql | sort -V | tail -n 1)
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
      || pg_ctlcluster "$version" main start
    for _ in $(seq 1 30); do port_answers 5432 && break; sleep 1; done
    # Debian's default pg_hba needs a password on TCP; give the superuser a known one for tests.
    runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD 'postgres'" >/dev/null
  fi
  export CERTCTL_TEST_POSTGRES_URL="${CERTCTL_TEST_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"
}

ensure_aiosmtpd() {
  # A Python venv with aiosmtpd, the SMTP server the e-mail notifier test
  # (core/tests/runtime/notifiers.rs) starts. Exports its interpreter and makes the
  # test fail, not skip, when it is missing.
  local venv="${CERTCTL_PYENV:-$PWD/target/pyenv}"
  if ! "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    command -v python3 >/dev/null || apt_install python3
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; rm -rf "$venv"; python3 -m venv "$venv"; }
    "$venv/bin/pip" install -q aiosmtpd
  fi
  export CERTCTL_AIOSMTPD_PYTHON="$venv/bin/python"
  export CERTCTL_REQUIRE_AIOSMTPD=1
}
