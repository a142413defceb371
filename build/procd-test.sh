#!/bin/sh
# Runs the functions of the procd init script against a stand-in for
# procd's shell API (procd_open_instance, procd_set_param, ...) and a fake
# pinhole binary, and checks the commands the script issues.
# Usage: build/procd-test.sh openwrt/files/pinhole.init
set -eu
init=$1
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

cat > "$t/pinhole" <<'EOS'
#!/bin/sh
# fake pinhole: `check` fails for a config containing BROKEN
if [ "$1" = check ]; then
	if grep -q BROKEN "$3"; then echo "$3:7: relays[0].public_key: key is not base64" >&2; exit 1; fi
	echo "$3: ok"; exit 0
fi
exit 0
EOS
chmod +x "$t/pinhole"

# Sourcing treats the "#!/bin/sh /etc/rc.common" line as a comment.
. "$init"
[ "$USE_PROCD" = 1 ] && ok "USE_PROCD=1" || bad "USE_PROCD is not 1"
[ "$START" -gt 20 ] && ok "START=$START, after network (20)" || bad "START=$START is not after network"
PROG="$t/pinhole"
CONF="$t/agent.yaml"

echo "name: good" > "$CONF"
start_service
want="open_instance 
set_param command $PROG agent -c $CONF
set_param respawn 3600 5 5
set_param stdout 1
set_param stderr 1
set_param file $CONF
set_param reload_signal HUP
close_instance"
if [ "$(cat "$calls")" = "$want" ]; then ok "start_service opens one instance: command, respawn 3600 5 5, stdout/stderr to logd, file + reload_signal HUP"
else bad "start_service issued:"; cat "$calls"; fi

: > "$calls"; reload_service
grep -qx "send_signal pinhole \* HUP" "$calls" && ok "reload_service sends SIGHUP to the instance" || { bad "reload issued:"; cat "$calls"; }

: > "$calls"; service_triggers
grep -q "interface_trigger interface.\*.up wan" "$calls" && ok "reloads when the wan interface comes up" || bad "no wan trigger"

echo "BROKEN" > "$CONF"
: > "$calls"
if start_service; then bad "start_service succeeded with a broken config"; fi
if grep -q open_instance "$calls"; then bad "a broken config still started an instance (procd would respawn it)"
else ok "broken config: no instance started"; fi
grep -q "logger .*agent.yaml:7: relays\[0\].public_key: key is not base64" "$calls" && ok "broken config: the file:line error goes to logread" || { bad "error not logged:"; cat "$calls"; }
: > "$calls"
if reload_service; then bad "reload with a broken config succeeded"; fi
grep -q send_signal "$calls" && bad "broken config was signalled to the running agent" || ok "broken config: reload leaves the running agent alone"
[ "$fails" -eq 0 ]
