#!/bin/sh
# The .ipk's service under the real procd (../shared/tools/procd-harness.sh:
# procd as PID 1 of its own namespaces, with ubusd, logd and OpenWrt's
# rc.common and procd.sh), checked as a router user would see it:
#   boot: the offline postinst's rc.d link starts it; the key is made on
#     the first start and its public key logged once; `pinhole pubkey`
#     prints it; sysupgrade's keep list holds /etc/pinhole/agent.key;
#   `ubus call service list`: command, respawn, reload signal, trigger;
#   logread levels: info as daemon.info, warnings and errors at theirs;
#   reload = SIGHUP to the same pid; kill -9 is respawned;
#   WAN up: netifd's interface.update notification (sent through ubus by
#     build/testdata/netifd-stub.c, from the object procd watches) reaches
#     the agent as SIGUSR1: it pings its relay (a real `pinhole relay`, also
#     run by procd) and keeps a link that answers, re-dials one that does
#     not (the relay killed); another interface is not passed on; a
#     flapping WAN is checked at most once a second;
#   a broken agent.yaml: file:line in logread, status "not running" (exit
#     5), nothing running or respawned; a key that cannot be written (a
#     read-only /etc/pinhole): said in logread, nothing respawned;
#   stop; the package's prerm (stop, disable) and postinst (enable, start)
#     run inside the same system.
# Usage (root): build/procd-test.sh PROCD_OUT PINHOLE_X86_64_IPK
#   PROCD_OUT is build-procd.sh's output; netifd-stub is built into it once.
set -eu
out=$(cd "$1" && pwd); ipk=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED_TOOLS:-$here/../shared/tools}
harness="$shared/procd-harness.sh"
t=$(mktemp -d)
st=$t/sys
cleanup() { sh "$harness" stop "$st" >/dev/null 2>&1 || true; rm -rf "$t"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
fails=0
ok() { echo "ok:   procd: $*"; }
bad() { echo "FAIL: procd: $*"; fails=$((fails + 1)); }
H() { sh "$harness" exec "$st" "$@"; }            # a command inside
logs() { H /sbin/logread -e pinhole 2>/dev/null; }
count() { logs | grep -c -- "$1" || true; }          # log lines matching $1
svc() { H ubus call service list "{\"name\":\"$1\",\"verbose\":true}" 2>/dev/null | tr -d ' \t\n'; }
# pid of the agent instance, from procd (empty when not running)
pid() { H ubus call service list '{"name":"pinhole"}' 2>/dev/null | H jsonfilter -e '@.pinhole.instances.*.pid' 2>/dev/null || true; }
status() { H /etc/init.d/pinhole status >/dev/null 2>&1 && echo 0 || echo $?; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
# until SECONDS CMD...: retry CMD every 50 ms until it succeeds or time runs out
until_ok() {
	n=$(( $1 * 20 )); shift
	while [ "$n" -gt 0 ]; do "$@" && return 0; n=$((n - 1)); sleep 0.05; done
	return 1
}

# netifd-stub: built once per PROCD_OUT against the libubus it holds.
stub=$out/netifd-stub
if [ ! -x "$stub" ] || [ "$here/build/testdata/netifd-stub.c" -nt "$stub" ]; then
	mkdir "$t/src"
	tar -xzf "$(ls "$shared"/libubox-*.tar.gz | head -1)" -C "$t/src"
	tar -xzf "$(ls "$shared"/ubus-*.tar.gz | head -1)" -C "$t/src"
	cc -O2 -Wall -I"$t/src" -I"$t/src/ubus" -o "$stub.tmp" "$here/build/testdata/netifd-stub.c" -L"$out/lib" -lubus -lubox
	mv "$stub.tmp" "$stub"
fi

# Keys and configs made on the host with the package's own binary.
mkdir -p "$t/pkg"
tar -xzf "$ipk" -O ./data.tar.gz | tar -xzf - -C "$t/pkg"
bin=$t/pkg/usr/bin/pinhole
"$bin" keygen > "$t/relay.key"
relaypub=$("$bin" pubkey < "$t/relay.key")
cat > "$t/agent.yaml" <<EOF
name: procd-test
private_key_file: /etc/pinhole/agent.key
relays:
  - address: 127.0.0.1:7700
    public_key: $relaypub
transport: udp
heartbeat: 15s
reconnect_max: 2s
admin: 127.0.0.1:7702
wan_interface: wan
expose:
  - {name: web, protocol: tcp, local: 127.0.0.1:8000, remote_port: 18080}
EOF
cat > "$t/setup.sh" <<EOF
set -eu
r=\$1
# The package as an image build installs it: files, then the postinst with
# IPKG_INSTROOT set (rc.d links only).
tar -xzf "$ipk" -O ./data.tar.gz | tar -xzf - -C "\$r"
mkdir -p "\$r/usr/lib/opkg/info"
tar -xzf "$ipk" -O ./control.tar.gz | tar -xzf - -C "$t" ./postinst ./prerm
cp "$t/postinst" "\$r/usr/lib/opkg/info/pinhole.postinst"
cp "$t/prerm" "\$r/usr/lib/opkg/info/pinhole.prerm"
IPKG_INSTROOT=\$r sh "\$r/usr/lib/opkg/info/pinhole.postinst"
install -m 0600 "$t/agent.yaml" "\$r/etc/pinhole/agent.yaml"
# netifd's place: /etc/init.d/network runs it with the watch that makes
# procd subscribe to network.interface (as OpenWrt's does).
cp "$stub" "\$r/sbin/netifd-stub"
cat > "\$r/etc/init.d/network" <<'EOS'
#!/bin/sh /etc/rc.common
START=20
USE_PROCD=1
start_service() {
	procd_open_instance
	procd_set_param command /sbin/netifd-stub
	procd_set_param respawn
	procd_set_param watch network.interface
	procd_close_instance
}
EOS
# the relay, started once the agent's public key is known
cat > "\$r/etc/init.d/relay" <<'EOS'
#!/bin/sh /etc/rc.common
USE_PROCD=1
start_service() {
	procd_open_instance
	procd_set_param command /usr/bin/pinhole relay -c /etc/relay.yaml
	procd_set_param stderr 1
	procd_close_instance
}
EOS
chmod 755 "\$r/etc/init.d/network" "\$r/etc/init.d/relay"
ln -s ../init.d/network "\$r/etc/rc.d/S20network"
install -m 0600 "$t/relay.key" "\$r/etc/relay.key"
EOF
sh "$harness" start "$st" "$out" "$t/setup.sh"
r=$st/root

# --- boot
if until_ok 10 sh -c "[ -n \"\$(sh '$harness' exec '$st' ubus call service list '{\"name\":\"pinhole\"}' 2>/dev/null | grep '\"running\": true')\" ]"; then
	ok "started at boot by rc.d/S95pinhole (made by the postinst in an offline root, as an image build does)"
else bad "not running after boot:"; svc pinhole; sh "$harness" console "$st"; logs; fi
pub=$(H sh -c 'pinhole pubkey < /dev/null' 2>&1) || true
created=$(count "created the agent key /etc/pinhole/agent.key; public key (for the relay's agents list): $pub")
[ "$created" = 1 ] && [ "$(stat -c %a "$r/etc/pinhole/agent.key")" = 600 ] &&
	ok "first start made /etc/pinhole/agent.key (mode 600) and logged its public key once; \`pinhole pubkey\` prints it ($pub)" ||
	{ bad "first-start key: pubkey '$pub', logged $created times:"; logs; }
# sysupgrade keeps what /lib/upgrade/keep.d lists (its add_conffiles).
kept=$(H sh -c 'find $(sed -ne "/^[[:space:]]*$/d; /^#/d; p" /lib/upgrade/keep.d/*) \( -type f -o -type l \)' 2>&1 | sort | tr '\n' ' ')
case "$kept" in *"/etc/pinhole/agent.key "*"/etc/pinhole/agent.yaml "*) ok "sysupgrade keep list (keep.d/pinhole): $kept";;
*) bad "sysupgrade would not keep the key: $kept";; esac

s=$(svc pinhole)
case "$s" in *'"command":["/usr/bin/pinhole","agent","-c","/etc/pinhole/agent.yaml","--syslog"]'*) ok "ubus service list: command /usr/bin/pinhole agent -c /etc/pinhole/agent.yaml --syslog";;
*) bad "command: $s";; esac
case "$s" in *'"respawn":{"threshold":3600,"timeout":5,"retry":5}'*) ok "ubus service list: respawn threshold 3600 timeout 5 retry 5";; *) bad "respawn: $s";; esac
case "$s" in *'"reload_signal":1'*) ok "ubus service list: reload_signal 1 (HUP)";; *) bad "reload_signal: $s";; esac
case "$s" in *'["interface.update",["if",["eq","interface","wan"],["run_script","/etc/init.d/pinhole","netchange"]]]'*)
	ok "ubus service list: trigger interface.update of wan runs /etc/init.d/pinhole netchange (no delay)";; *) bad "trigger: $s";; esac

# --- the relay: the agent (retrying since boot) connects
printf 'listen: 127.0.0.1:7700\nprivate_key_file: /etc/relay.key\nbind: 127.0.0.1\nadmin: 127.0.0.1:7701\nagents:\n  - name: procd-test\n    public_key: %s\n    allow_ports: [18080]\n' "$pub" > "$r/etc/relay.yaml"
H /etc/init.d/relay start
until_ok 15 sh -c "sh '$harness' exec '$st' /sbin/logread -e pinhole | grep -q 'connected to relay'" &&
	ok "the agent connected to the relay" || { bad "no link to the relay:"; logs; }

# --- log levels, through the real logread
l=$(logs)
echo "$l" | grep -q 'daemon\.info pinhole\[[0-9]*\]: level=INFO msg="agent up"' &&
	ok "logread: $(echo "$l" | grep -m1 'msg="agent up"' | sed 's/^.* daemon/daemon/' | cut -c1-60)..." || { bad "agent up not at daemon.info:"; echo "$l"; }
p1=$(pid)
if echo "$l" | grep "daemon\.err pinhole\[$p1\]" | grep -q 'level=INFO\|level=WARN'; then bad "agent info or warning lines at daemon.err:"; echo "$l" | grep 'daemon\.err'
else ok "logread: none of the agent's $(echo "$l" | grep -c "pinhole\[$p1\]: level=INFO") info lines at daemon.err"; fi

# --- reload: SIGHUP to the same process
p1=$(pid)
H /etc/init.d/pinhole reload
until_ok 5 sh -c "sh '$harness' exec '$st' /sbin/logread -e pinhole | grep -q 'agent config reloaded'" && [ "$(pid)" = "$p1" ] &&
	ok "service pinhole reload: SIGHUP, same pid $p1 (agent config reloaded)" || { bad "reload: pid $p1 -> $(pid)"; logs; }
# an error line: a broken file sent straight to the agent (kill -HUP)
cp "$r/etc/pinhole/agent.yaml" "$t/good.yaml"
sed -i 's|public_key: .*|public_key: not-a-key|' "$r/etc/pinhole/agent.yaml"
H kill -HUP "$p1"
until_ok 5 sh -c "sh '$harness' exec '$st' /sbin/logread -e pinhole | grep -q 'daemon\.err pinhole\[[0-9]*\]: level=ERROR msg=\"reload refused'" &&
	ok "logread: an error at daemon.err (a broken config on SIGHUP: reload refused, the agent keeps running)" || { bad "no daemon.err line:"; logs; }
cp "$t/good.yaml" "$r/etc/pinhole/agent.yaml"

# --- WAN up, as netifd announces it
changes=$(count "network changed: the relay link")
H ubus call network.interface test_event '{"interface":"lan"}'
sleep 1.5
[ "$(count "network changed: the relay link")" = "$changes" ] && ok "interface.update of lan: not passed on" ||
	{ bad "lan event passed on:"; logs; }
t0=$(ms)
H ubus call network.interface test_event '{"interface":"wan"}'
if until_ok 5 sh -c "[ \$(sh '$harness' exec '$st' /sbin/logread -e pinhole | grep -c 'network changed: the relay link answers; kept') -gt 0 ]"; then
	ok "interface.update of wan (ubus notify from network.interface) -> trigger -> SIGUSR1 -> the agent pinged its relay: answered, link kept; $(( $(ms) - t0 )) ms from the event to the log line"
else bad "no reaction to the wan event:"; logs; fi
[ "$(pid)" = "$p1" ] && ok "the agent kept its pid: a signal, not a restart" || bad "pid changed on the wan event: $p1 -> $(pid)"
sleep 1.1
changes=$(count "network changed: the relay link")
H ubus call network.interface test_event '{"interface":"wan","count":20,"every_ms":50}'
sleep 3
n=$(( $(count "network changed: the relay link") - changes ))
[ "$n" -ge 2 ] && [ "$n" -le 3 ] && [ "$(pid)" = "$p1" ] &&
	ok "a flapping wan (20 events in 1 s): $n link checks in 3 s (at most one a second, the last event not lost)" ||
	{ bad "flapping wan: $n link checks, pid $p1 -> $(pid)"; logs | tail -20; }
# A link that does not answer (the relay killed: nothing tells the agent)
# is re-dialed after answerWait (1 s), and comes back with the relay.
rpid=$(H ubus call service list '{"name":"relay"}' | H jsonfilter -e '@.relay.instances.*.pid')
conns=$(count "connected to relay")
H kill -9 "$rpid"
sleep 1.1   # the rate limit: the flapping's last check may have just run
t0=$(ms)
H ubus call network.interface test_event '{"interface":"wan"}'
if until_ok 5 sh -c "sh '$harness' exec '$st' /sbin/logread -e pinhole | grep -q 'network changed: the relay link does not answer; re-dialing'"; then
	ok "relay killed, then a wan event: the ping went unanswered, re-dialing $(( $(ms) - t0 )) ms after the event"
else bad "no re-dial of a dead link:"; logs | tail; fi
H /etc/init.d/relay restart
until_ok 10 sh -c "[ \$(sh '$harness' exec '$st' /sbin/logread -e pinhole | grep -c 'connected to relay') -gt $conns ]" &&
	ok "the relay back: the agent connected again" || { bad "not reconnected:"; logs | tail; }
# --- crash: kill -9 is respawned (respawn timeout 5 s)
H kill -9 "$p1"
if until_ok 10 sh -c "p=\$(sh '$harness' exec '$st' ubus call service list '{\"name\":\"pinhole\"}' | sh '$harness' exec '$st' jsonfilter -e '@.pinhole.instances.*.pid'); [ -n \"\$p\" ] && [ \"\$p\" != $p1 ] && sh '$harness' exec '$st' kill -0 \$p"; then
	ok "kill -9 $p1: respawned as $(pid)"
else bad "not respawned after kill -9"; fi

# --- a broken config: refused, said, not respawned
sed -i 's|public_key: .*|public_key: not-a-key|' "$r/etc/pinhole/agent.yaml"
H /etc/init.d/pinhole restart > "$t/start.txt" 2>&1 || true
line=$(grep -n "public_key: not-a-key" "$r/etc/pinhole/agent.yaml" | cut -d: -f1)
logs | grep -q "agent.yaml:$line: relays\[0\].public_key" &&
	ok "broken config: logread has $(logs | grep -m1 -o "agent.yaml:$line: relays\[0\].public_key: [^\"]*" | head -c 70)" || { bad "file:line not in logread:"; logs | tail; }
# and on the terminal of whoever ran it (script(1) gives it one)
script -qec "sh '$harness' exec '$st' /etc/init.d/pinhole start" /dev/null > "$t/start.txt" 2>&1 || true
grep -q "agent.yaml:$line:" "$t/start.txt" && ok "broken config: the error is on the terminal of \`service pinhole start\` too" || bad "not on the terminal: $(cat "$t/start.txt")"
sleep 3
out_status=$(H /etc/init.d/pinhole status 2>&1 || true)
[ "$(status)" = 5 ] && [ "$out_status" = "not running" ] && [ -z "$(pid)" ] && ! H ps | grep -q "[p]inhole agent" &&
	ok "broken config: status says \"$out_status\" (exit 5), no process, none respawned after 3 s" ||
	{ bad "broken config: status '$out_status' exit $(status), pid '$(pid)'"; }
svc pinhole | grep -q '"errors":\["invalidconfig/etc/pinhole/agent.yaml' && ok "broken config: ubus service list carries the error" || bad "no error in service list: $(svc pinhole)"

# --- no key and a read-only /etc/pinhole (a full or read-only overlay)
cp "$t/good.yaml" "$r/etc/pinhole/agent.yaml"
H /etc/init.d/pinhole stop
rm "$r/etc/pinhole/agent.key"
H mount --bind /etc/pinhole /etc/pinhole
H mount -o remount,bind,ro /etc/pinhole
H /etc/init.d/pinhole start > /dev/null 2>&1 || true
sleep 2
logs | grep -q "daemon\.err pinhole: pinhole keygen: cannot create the agent key /etc/pinhole/agent.key: read-only file system" &&
	[ "$(status)" = 5 ] && [ -z "$(pid)" ] &&
	ok "no key, read-only /etc/pinhole: logread says "$(logs | grep -m1 -o 'cannot create the agent key.*')"; not running, nothing respawned" ||
	{ bad "read-only key dir: status $(status), pid '$(pid)'"; logs | tail -5; }
H umount /etc/pinhole
H /etc/init.d/pinhole start
until_ok 5 sh -c "[ -n \"\$(sh '$harness' exec '$st' ubus call service list '{\"name\":\"pinhole\"}' | grep '\"running\": true')\" ]" &&
	[ "$(count "daemon.info pinhole: created the agent key")" = 2 ] && ok "writable again: the next start made a new key, logged it, and runs" || { bad "after remount:"; logs | tail -5; }
# the relay does not know the new key: a warning, at its level
until_ok 10 sh -c "sh '$harness' exec '$st' /sbin/logread -e pinhole | grep -q 'daemon\.warn pinhole\[[0-9]*\]: level=WARN msg=\"relay unreachable\"'" &&
	ok "logread: a warning at daemon.warn ($(logs | grep -m1 -o 'daemon.warn.*msg="relay unreachable"' | sed 's/\[[0-9]*\]//'))" || { bad "no warning at daemon.warn:"; logs | tail; }

# --- stop; the package's scripts inside
H /etc/init.d/pinhole stop
sleep 0.5
[ "$(status)" = 3 ] && [ -z "$(pid)" ] && ok "stop: gone (status: $(H /etc/init.d/pinhole status 2>&1 || true))" || bad "stop: status $(status) pid $(pid)"
H /etc/init.d/pinhole start
until_ok 5 sh -c "[ -n \"\$(sh '$harness' exec '$st' ubus call service list '{\"name\":\"pinhole\"}' | grep '\"running\": true')\" ]" || true
H sh /usr/lib/opkg/info/pinhole.prerm remove
[ ! -e "$r/etc/rc.d/S95pinhole" ] && [ "$(status)" = 3 ] && ok "prerm (remove): stopped and disabled" || bad "prerm: status $(status), S95 $(ls "$r/etc/rc.d")"
H sh /usr/lib/opkg/info/pinhole.postinst configure
until_ok 5 sh -c "[ -n \"\$(sh '$harness' exec '$st' ubus call service list '{\"name\":\"pinhole\"}' | grep '\"running\": true')\" ]" &&
	[ -L "$r/etc/rc.d/S95pinhole" ] && ok "postinst: enabled and started" || bad "postinst: status $(status), rc.d $(ls "$r/etc/rc.d")"

[ -n "${KEEP:-}" ] && { trap - EXIT; echo "kept $st"; exit 0; }
sh "$harness" stop "$st"
[ "$fails" -eq 0 ]
