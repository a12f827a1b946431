#!/usr/bin/env bash
# Real mail servers for ferry's mail tests and benchmarks, on 127.0.0.1 only, no systemd.
#
#   mail-servers.sh install            # apt-get dovecot + postfix when missing (Debian)
#   mail-servers.sh start DIR BASEPORT # configs, Maildirs, TLS under DIR; start both
#   mail-servers.sh stop DIR           # stop what `start DIR` started (by pid)
#
# Ports (BASEPORT = B): IMAP B (STARTTLS offered), IMAPS B+1, LMTP B+2, dovecot SASL B+3,
#   SMTP B+4 (no auth, delivers to the example.test users via LMTP),
#   submission B+5 (STARTTLS required + AUTH), SMTPS B+6 (implicit TLS + AUTH).
# Users (password "secret"): alice, bob; addresses alice@example.test, bob@example.test.
# Maildirs: DIR/mail/USER/Maildir. TLS: DIR/tls/ca.pem is the CA to trust; the server
# certificate is a leaf signed by it (rustls refuses a self-signed CA as a leaf), for
# localhost and 127.0.0.1.
#
# Several instances can run side by side (own DIR, own ports, own dovecot instance name
# and own postfix config directory and queue).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
MAILUID=65534 # nobody: owns the Maildirs

wait_port() { # port
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "mail-servers: port $1 did not open" >&2
  return 1
}

cmd_install() {
  local missing=()
  command -v dovecot >/dev/null || missing+=(dovecot-imapd dovecot-lmtpd)
  [ -x /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
  command -v postfix >/dev/null || command -v /usr/sbin/postfix >/dev/null || missing+=(postfix)
  command -v openssl >/dev/null || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "mail-servers: installing ${missing[*]}" >&2
  $sudo apt-get update -q >/dev/null
  $sudo apt-get install -y -q "${missing[@]}" >/dev/null
}

cmd_start() {
  local B=$1 P=$2
  local IMAP=$P IMAPS=$((P + 1)) LMTP=$((P + 2)) SASL=$((P + 3)) SMTP=$((P + 4)) SUB=$((P + 5)) SMTPS=$((P + 6))
  mkdir -p "$B"/{pids,tls,mail,dovecot/run,dovecot/state,postfix/etc,postfix/spool,postfix/data}
  # The servers run as other users (postfix, nobody, dovenull): the folders must be traversable.
  chmod 755 "$B" "$B"/tls "$B"/dovecot "$B"/postfix "$B"/postfix/etc
  local parent=$B
  while parent=$(dirname "$parent") && [ "$parent" != / ]; do chmod o+x "$parent" 2>/dev/null || true; done

  (cd "$B/tls"
   openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj "/CN=ferry test CA" 2>/dev/null
   openssl req -newkey rsa:2048 -nodes -keyout key.pem -out leaf.csr -subj /CN=localhost 2>/dev/null
   printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > leaf.ext
   openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -extfile leaf.ext -out cert.pem 2>/dev/null
   chmod 644 key.pem cert.pem ca.pem)

  for u in alice bob; do mkdir -p "$B/mail/$u/Maildir"/{cur,new,tmp}; done
  chown -R $MAILUID:$MAILUID "$B/mail"
  printf 'alice:{PLAIN}secret::::::\nbob:{PLAIN}secret::::::\n' > "$B/dovecot/users"
  cat > "$B/dovecot/dovecot.conf" <<EOF
base_dir = $B/dovecot/run
state_dir = $B/dovecot/state
instance_name = ferry-dovecot-$P
log_path = $B/dovecot/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <$B/tls/cert.pem
ssl_key = <$B/tls/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %Ln
auth_failure_delay = 0
mail_location = maildir:$B/mail/%u/Maildir
mail_uid = $MAILUID
mail_gid = $MAILUID
first_valid_uid = 1
mail_max_userip_connections = 100
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $B/dovecot/users
}
userdb {
  driver = static
  args = uid=$MAILUID gid=$MAILUID home=$B/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP
  }
}
protocol lmtp {
  postmaster_address = postmaster@example.test
}
service auth {
  inet_listener sasl {
    address = 127.0.0.1
    port = $SASL
  }
}
EOF
  nohup dovecot -F -c "$B/dovecot/dovecot.conf" > "$B/dovecot/stdout.log" 2>&1 &
  echo $! > "$B/pids/dovecot"

  chown postfix "$B/postfix/data"
  cat > "$B/postfix/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $B/postfix/spool
data_directory = $B/postfix/data
maillog_file = $B/postfix/postfix.log
maillog_file_prefixes = $B
myhostname = mx.example.test
mydomain = example.test
myorigin = \$mydomain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
relayhost =
relay_domains =
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = example.test
virtual_mailbox_maps = inline:{ alice@example.test=alice/, bob@example.test=bob/ }
virtual_transport = lmtp:inet:127.0.0.1:$LMTP
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
message_size_limit = 52428800
smtputf8_enable = no
biff = no
smtpd_tls_cert_file = $B/tls/cert.pem
smtpd_tls_key_file = $B/tls/key.pem
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:$SASL
smtpd_sasl_auth_enable = yes
default_process_limit = 50
EOF
  cat > "$B/postfix/etc/master.cf" <<EOF
127.0.0.1:$SMTP inet n - n - - smtpd
127.0.0.1:$SUB inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
127.0.0.1:$SMTPS inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
EOF
  cat >> "$B/postfix/etc/master.cf" <<'EOF'
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
  # postfix prints its errors only to a terminal or its log: show the log on failure.
  postfix -c "$B/postfix/etc" check || { cat "$B/postfix/postfix.log" >&2 || true; exit 1; }
  postfix -c "$B/postfix/etc" start >/dev/null || { cat "$B/postfix/postfix.log" >&2 || true; exit 1; }

  for p in $IMAP $IMAPS $LMTP $SASL $SMTP $SUB $SMTPS; do wait_port "$p"; done
  cp "$B/postfix/spool/pid/master.pid" "$B/pids/postfix-master" 2>/dev/null || true
}

cmd_stop() {
  local B=$1
  [ -d "$B/pids" ] || return 0
  postfix -c "$B/postfix/etc" stop >/dev/null 2>&1 || true
  local pids="" pid st f
  for f in "$B"/pids/*; do
    [ -f "$f" ] || continue
    pid=$(tr -d ' \n' < "$f"); [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || true; pids="$pids $pid"
  done
  for pid in $pids; do # dovecot needs 1-3 s to exit; a zombie counts as gone
    for _ in $(seq 100); do st=$(ps -o stat= -p "$pid" 2>/dev/null || true); { [ -z "$st" ] || [[ $st == Z* ]]; } && break; sleep 0.1; done
  done
  rm -f "$B"/pids/*
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_install; cmd_start "${2:?DIR}" "${3:?BASEPORT}" ;;
  stop) cmd_stop "${2:?DIR}" ;;
  *) echo "usage: $0 install | start DIR BASEPORT | stop DIR" >&2; exit 2 ;;
esac
