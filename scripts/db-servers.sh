#!/usr/bin/env bash
# Real database servers for ferry's database tests and benchmarks, on 127.0.0.1 only, no
# systemd, each instance in its own folder on its own port.
#
#   db-servers.sh install                        # apt-get postgresql + mariadb-server when missing
#   db-servers.sh start KIND DIR PORT [OWNER]    # KIND: postgres | mariadb; OWNER: a pid
#   db-servers.sh stop KIND DIR                  # a clean shutdown
#   db-servers.sh kill KIND DIR                  # SIGKILL (an outage in the middle of work)
#   db-servers.sh sql KIND DIR PORT 'SQL'        # runs SQL as the superuser, tab-separated rows
#
# Every instance has the login ferry / secret, owner of the database ferry, and TLS:
# DIR/tls/ca.pem is the CA to trust (the server certificate is a leaf signed by it, for
# localhost and 127.0.0.1). PostgreSQL accepts plain and TLS connections with
# scram-sha-256; MariaDB too (mysql_native_password).
#
# With OWNER, a watcher stops the instance (and removes DIR) once that process is gone, so a test binary
# that starts a server once (and never drops it) leaves nothing running.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/postgres" ] && { echo "$d"; return 0; }; done
  return 1
}

wait_port() { # port
  for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "db-servers: port $1 did not open" >&2
  return 1
}

cmd_install() {
  local missing=()
  pg_bin >/dev/null || missing+=(postgresql)
  command -v psql >/dev/null || missing+=(postgresql-client)
  [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
  command -v mariadb >/dev/null || missing+=(mariadb-client)
  command -v openssl >/dev/null || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "db-servers: installing ${missing[*]}" >&2
  $sudo apt-get update -q >/dev/null
  $sudo apt-get install -y -q "${missing[@]}" >/dev/null
}

tls() { # dir owner
  local B=$1
  mkdir -p "$B/tls"
  (cd "$B/tls"
   openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj "/CN=ferry test CA" 2>/dev/null
   openssl req -newkey rsa:2048 -nodes -keyout key.pem -out leaf.csr -subj /CN=localhost 2>/dev/null
   printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > leaf.ext
   openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -extfile leaf.ext -out cert.pem 2>/dev/null
   chown "$2" key.pem cert.pem
   chmod 600 key.pem
   chmod 644 cert.pem ca.pem)
  chmod 755 "$B/tls"
}

# The servers run as their own users: every folder above DIR must be traversable.
open_parents() {
  local parent=$1
  while parent=$(dirname "$parent") && [ "$parent" != / ]; do chmod o+x "$parent" 2>/dev/null || true; done
}

watch_owner() { # kind dir owner
  [ -n "${3:-}" ] || return 0
  (
    trap '' HUP
    while kill -0 "$3" 2>/dev/null; do sleep 1; done
    "$0" stop "$1" "$2" >/dev/null 2>&1 || true
    rm -rf "$2"
  ) </dev/null >/dev/null 2>&1 &
  disown || true
}

start_postgres() { # dir port
  local B=$1 P=$2 bin
  bin=$(pg_bin) || { echo "db-servers: PostgreSQL is not installed" >&2; return 1; }
  if [ ! -f "$B/pg/PG_VERSION" ]; then
    mkdir -p "$B/pg" "$B/run"
    chmod 755 "$B"
    tls "$B" postgres
    echo secret > "$B/pw"
    chown postgres "$B/pg" "$B/run" "$B/pw"
    runuser -u postgres -- "$bin/initdb" -D "$B/pg" -U postgres --pwfile="$B/pw" -A scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "$B/pg/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $P
unix_socket_directories = '$B/run'
ssl = on
ssl_cert_file = '$B/tls/cert.pem'
ssl_key_file = '$B/tls/key.pem'
fsync = on
max_connections = 100
EOF
    printf 'local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n' > "$B/pg/pg_hba.conf"
  fi
  runuser -u postgres -- "$bin/pg_ctl" -D "$B/pg" -l "$B/run/pg.log" -w -t 60 start >/dev/null
  wait_port "$P"
  if [ ! -f "$B/ready" ]; then
    PGPASSWORD=secret "$bin/psql" -qAt -h 127.0.0.1 -p "$P" -U postgres -d postgres \
      -c "CREATE ROLE ferry LOGIN PASSWORD 'secret'" -c "CREATE DATABASE ferry OWNER ferry" >/dev/null
    touch "$B/ready"
  fi
}

start_mariadb() { # dir port
  local B=$1 P=$2
  [ -x /usr/sbin/mariadbd ] || { echo "db-servers: MariaDB is not installed" >&2; return 1; }
  local args=(--no-defaults --datadir="$B/maria" --port="$P" --bind-address=127.0.0.1
    --socket="$B/run/maria.sock" --pid-file="$B/run/maria.pid" --user=mysql
    --skip-name-resolve --log-error="$B/run/maria.log"
    --ssl-ca="$B/tls/ca.pem" --ssl-cert="$B/tls/cert.pem" --ssl-key="$B/tls/key.pem"
    --innodb-buffer-pool-size=64M --innodb-log-file-size=48M)
  if [ ! -d "$B/maria/mysql" ]; then
    mkdir -p "$B/maria" "$B/run"
    chmod 755 "$B"
    tls "$B" mysql
    chown mysql "$B/maria" "$B/run"
    mariadb-install-db --no-defaults --datadir="$B/maria" --user=mysql \
      --auth-root-authentication-method=socket --skip-test-db >"$B/install.log" 2>&1
  fi
  /usr/sbin/mariadbd "${args[@]}" </dev/null >/dev/null 2>&1 &
  wait_port "$P"
  if [ ! -f "$B/ready" ]; then
    mariadb --no-defaults --socket="$B/run/maria.sock" -u root -e \
      "CREATE USER 'ferry'@'127.0.0.1' IDENTIFIED BY 'secret'; CREATE DATABASE ferry CHARACTER SET utf8mb4; GRANT ALL ON ferry.* TO 'ferry'@'127.0.0.1';"
    touch "$B/ready"
  fi
}

cmd_start() { # kind dir port [owner]
  local K=$1 B=$2 P=$3
  mkdir -p "$B"
  B=$(cd "$B" && pwd)
  open_parents "$B/x"
  case $K in
    postgres) start_postgres "$B" "$P" ;;
    mariadb) start_mariadb "$B" "$P" ;;
    *) echo "db-servers: unknown kind $K (postgres | mariadb)" >&2; return 2 ;;
  esac
  echo "$P" > "$B/port"
  watch_owner "$K" "$B" "${4:-}"
}

server_pid() { # kind dir
  case $1 in
    postgres) head -1 "$2/pg/postmaster.pid" 2>/dev/null ;;
    mariadb) cat "$2/run/maria.pid" 2>/dev/null ;;
  esac
}

cmd_stop() { # kind dir
  local pid
  pid=$(server_pid "$1" "$2") || true
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

cmd_kill() { # kind dir
  local pid
  pid=$(server_pid "$1" "$2") || true
  [ -n "$pid" ] || return 0
  if [ "$1" = postgres ]; then
    # The postmaster and every backend: nothing may finish a transaction after this.
    pkill -KILL -P "$pid" 2>/dev/null || true
  fi
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  if [ "$1" = postgres ]; then rm -f "$2/pg/postmaster.pid"; fi
}

cmd_sql() { # kind dir port sql
  case $1 in
    postgres) PGPASSWORD=secret "$(pg_bin)/psql" -qAtX -F $'\t' -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$3" -U postgres -d ferry -c "$4" ;;
    mariadb) mariadb --no-defaults --socket="$2/run/maria.sock" -u root -N -B ferry -e "$4" ;;
  esac
}

case ${1:-} in
  install) cmd_install ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  kill) shift; cmd_kill "$@" ;;
  sql) shift; cmd_sql "$@" ;;
  *) echo "usage: $0 install | start KIND DIR PORT [OWNER] | stop KIND DIR | kill KIND DIR | sql KIND DIR PORT SQL" >&2; exit 2 ;;
esac
