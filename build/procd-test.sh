#!/bin/sh
# Runs the functions of the procd init script against a stand-in for
# procd's shell API (procd_open_instance, procd_set_param, ...) that records
# every call, with the real pinhole binary doing the config check, and
# checks the commands the script issues.
# Usage: build/procd-test.sh openwrt/files/pinhole.init PINHOLE_BINARY
set -eu
init=$1
bin=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
calls="$t/calls"; : > "$calls"
fails=0
ok() { echo "ok:   procd: $*"; }
bad() { echo "FAIL: procd: $*"; fails=$((fails + 1)); }

procd_open_instance() { echo "open_instance $*" >> "$calls"; }
procd_set_param() { echo "set_param $*" >> "$calls"; }
procd_close_instance() { echo "close_instance" >> "$calls"; }
procd_send_signal() { echo "send_signal $*" >> "$calls"; }
procd_add_interface_trigger() { echo "interface_trigger $*" >> "$calls"; }
logger() { while [ $# -gt 1 ]; do shift; done; echo "logger $1" >> "$calls"; }

# Sourcing treats the "#!/bin/sh /etc/rc.common" line as a comment.
. "$init"
[ "$USE_PROCD" = 1 ] && ok "USE_PROCD=1" || bad "USE_PROCD is not 1"
[ "$START" -gt 20 ] && ok "START=$START, after network (20)" || bad "START=$START is not after network"
[ "$PROG" = /usr/bin/pinhole ] && [ "$CONF" = /etc/pinhole/agent.yaml ] &&
	ok "runs /usr/bin/pinhole with /etc/pinhole/agent.yaml" || bad "PROG=$PROG CONF=$CONF"
PROG=$bin
CONF="$t/agent.yaml"

"$bin" keygen > "$t/agent.key"
"$bin" keygen | "$bin" pubkey > "$t/relay.pub"
cat > "$CONF" <<EOC
name: router
private_key_file: agent.key
relays:
  - address: 127.0.0.1:7700
    public_key: $(cat "$t/relay.pub")
expose:
  - {name: web, protocol: tcp, local: 127.0.0.1:80, remote_port: 8080}
EOC
start_service 2> "$t/stderr"
want="open_instance 
set_param command $PROG agent -c $CONF
set_param respawn 3600 5 5
set_param stdout 1
set_param stderr 1
set_param file $CONF
set_param reload_signal HUP
close_instance"
if [ "$(cat "$calls")" = "$want" ]; then ok "start_service opens one instance: command, respawn 3600 5 5, stdout/stderr to logd, file + reload_signal HUP"
else bad "start_service issued:"; cat "$calls" "$t/stderr"; fi

: > "$calls"; reload_service
grep -qx "send_signal pinhole \* HUP" "$calls" && ok "reload_service sends SIGHUP to the instance" || { bad "reload issued:"; cat "$calls"; }

# A real mistake on line 5: the relay key is not base64.
sed -i 's|public_key: .*|public_key: not-a-key|' "$CONF"
: > "$calls"
if start_service 2> "$t/stderr"; then bad "start_service succeeded with a broken config"; fi
if grep -q open_instance "$calls"; then bad "a broken config still started an instance (procd would respawn it)"
else ok "broken config: no instance started"; fi
if grep -q "^logger .*agent.yaml:5: relays\[0\].public_key: key is not base64" "$calls"; then
	ok "broken config: logread gets the file:line error ($(grep -m1 'agent.yaml:5' "$calls" | sed "s|^logger $t/||"))"
else bad "error not logged:"; cat "$calls"; fi
grep -q "agent.yaml:5: relays\[0\].public_key" "$t/stderr" && ok "broken config: the error is also on stderr for \`service pinhole start\`" ||
	{ bad "error not on stderr:"; cat "$t/stderr"; }
: > "$calls"
if reload_service 2>/dev/null; then bad "reload with a broken config succeeded"; fi
grep -q send_signal "$calls" && bad "broken config was signalled to the running agent" || ok "broken config: reload leaves the running agent alone"
[ "$fails" -eq 0 ]
