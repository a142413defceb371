#!/bin/sh
# build/pinhole-relay.service under the real systemd: systemd runs as PID 1
# of new PID, mount, network, UTS, IPC and cgroup namespaces, on an overlay
# of this machine's root (every write lands in a tmpfs; nothing on the host
# changes), and the unit is installed as its comment says. Checked:
#   the relay runs as the unprivileged user pinhole with no capability but
#   CAP_NET_BIND_SERVICE, and binds an exposure on port 443 (an agent
#   registers one);
#   `systemctl reload`: SIGHUP, same pid, the new config applied;
#   kill -9: restarted (Restart=on-failure) with a new pid;
#   a broken relay.yaml: `systemctl restart` fails, the journal has the
#   file:line, the old process is gone;
#   `systemd-analyze security` exposure level of the unit, as systemd
#   itself runs it.
# Usage (root; needs systemd and iproute2 installed): build/systemd-test.sh PINHOLE_BINARY
set -eu
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
unit=${RELAY_UNIT:-$here/build/pinhole-relay.service}
t=$(mktemp -d)
cg=
upid=
fails=0
ok() { echo "ok:   systemd: $*"; }
bad() { echo "FAIL: systemd: $*"; fails=$((fails + 1)); }
cleanup() {
	[ -z "$upid" ] || kill -KILL "$upid" 2>/dev/null || true
	i=0; while [ -n "$upid" ] && [ -d "/proc/$upid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	# the cgroups systemd made inside, deepest first, once empty
	if [ -n "$cg" ] && [ -d "$cg" ]; then
		i=0; while grep -q "populated 1" "$cg/cgroup.events" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	fi
	rm -rf "$t"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x /lib/systemd/systemd ] || { echo "systemd-test: /lib/systemd/systemd missing (apt-get install systemd)" >&2; exit 1; }
# A cgroup v2 subtree of our own becomes the namespace's cgroup root.
cg2=$(findmnt -n -o TARGET -t cgroup2 | head -n 1)
[ -n "$cg2" ] || { echo "systemd-test: no cgroup2 mount" >&2; exit 1; }
cg=$cg2/pinhole-systemd-test-$$
mkdir "$cg"

# Files the boot copies into the overlay: the binary, the unit, configs.
mkdir -p "$t/files" "$t/rw" "$t/root"
: > "$t/console"
cp "$bin" "$t/files/pinhole"
cp "$unit" "$t/files/pinhole-relay.service"
"$bin" keygen > "$t/files/relay.key"
"$bin" keygen > "$t/files/agent.key"
relaypub=$("$bin" pubkey < "$t/files/relay.key")
agentpub=$("$bin" pubkey < "$t/files/agent.key")
printf 'listen: 127.0.0.1:7700\nprivate_key_file: relay.key\nbind: 127.0.0.1\nadmin: 127.0.0.1:7701\nstate_file: /var/lib/pinhole/relay.state\nagents:\n  - name: r1\n    public_key: %s\n    allow_ports: ["443/tcp"]\n' "$agentpub" > "$t/files/relay.yaml"
printf 'name: r1\nprivate_key_file: /etc/pinhole-agent/agent.key\nrelays:\n  - address: 127.0.0.1:7700\n    public_key: %s\ntransport: udp\nheartbeat: 15s\nreconnect_max: 2s\nadmin: 127.0.0.1:7702\nexpose:\n  - {name: web, protocol: tcp, local: 127.0.0.1:8000, remote_port: 443}\n' "$relaypub" > "$t/files/agent.yaml"
cat > "$t/boot.sh" <<'EOF'
set -eu
t=$1
mount -t tmpfs -o mode=0755 tmpfs "$t/rw"
mkdir -p "$t/rw/upper" "$t/rw/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$t/rw/upper,workdir=$t/rw/work" "$t/root"
r=$t/root
mkdir -p "$r/etc/systemd/system" "$r/usr/local/bin" "$r/etc/pinhole-agent"
printf '[Unit]\nDescription=pinhole test boot\nDefaultDependencies=no\n' > "$r/etc/systemd/system/pinhole-test.target"
install -m 0755 "$t/files/pinhole" "$r/usr/local/bin/pinhole"
install -m 0600 "$t/files/agent.yaml" "$t/files/agent.key" "$r/etc/pinhole-agent/"
mkdir -p "$r/root/pinhole-files" && cp "$t/files/"* "$r/root/pinhole-files/"
mount -t proc proc "$r/proc"
mount -t sysfs sysfs "$r/sys"
mount -t cgroup2 cgroup2 "$r/sys/fs/cgroup"
mount -t tmpfs -o mode=0755 tmpfs "$r/dev"
for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
	name=${n%%:*}; mm=${n#*:}
	mknod -m 666 "$r/dev/$name" c "${mm%%:*}" "${mm#*:}"
done
: > "$r/dev/console"; mount --bind "$t/console" "$r/dev/console"
mkdir "$r/dev/pts" "$r/dev/shm"
ln -s /proc/self/fd "$r/dev/fd"
ln -s pts/ptmx "$r/dev/ptmx"   # PrivateDevices= clones it
mount -t tmpfs -o mode=0755 tmpfs "$r/run"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
ip link set lo up
# pivot_root, not chroot: systemd's per-unit namespaces (PrivateDevices)
# need a real root mount.
mkdir "$r/.oldroot"
cd "$r"
pivot_root . .oldroot
exec env -i container=pinhole-test /bin/sh -c 'umount -l /.oldroot && rmdir /.oldroot && exec /lib/systemd/systemd --unit=pinhole-test.target'
EOF
# The first process moves itself into our cgroup, then unshares: its
# child (systemd) is PID 1 there and sees that cgroup as its root.
setsid sh -c 'echo $$ > "$1/cgroup.procs" && exec unshare --pid --mount --uts --ipc --net --cgroup --fork --kill-child --propagation private sh "$2/boot.sh" "$2"' \
	sh "$cg" "$t" < /dev/null > "$t/boot.log" 2>&1 &
upid=$!
I() { nsenter -t "$spid" -m -u -i -n -p -r -w env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
spid=; i=0
while [ -z "$spid" ] && [ $i -lt 50 ]; do
	spid=$(pgrep -P "$upid" -x unshare >/dev/null 2>&1 && pgrep -P "$(pgrep -P "$upid" -x unshare)" || true)
	[ -n "$spid" ] || spid=$(pgrep -P "$upid" || true)
	[ -n "$spid" ] && [ "$(cat "/proc/$spid/comm" 2>/dev/null)" = systemd ] || spid=
	[ -n "$spid" ] || { sleep 0.1; i=$((i + 1)); }
done
[ -n "$spid" ] || { echo "systemd-test: systemd did not start:"; cat "$t/boot.log"; exit 1; }
i=0
until [ "$(I systemctl is-system-running 2>/dev/null)" = running ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
[ $i -lt 100 ] || { bad "systemd did not come up: $(I systemctl is-system-running 2>&1)"; exit 1; }
I systemctl start systemd-journald.socket systemd-journald.service >/dev/null 2>&1 || true

if [ -n "${SYSTEMD_TEST_SHELL:-}" ]; then trap - EXIT; echo "systemd pid $spid, unshare $upid, cgroup $cg, dir $t"; exit 0; fi
# Installed as the unit's comment says.
I sh -e -c '
	useradd --system --no-create-home --shell /usr/sbin/nologin pinhole
	install -d -m 0750 -g pinhole /etc/pinhole
	install -m 0640 -g pinhole /root/pinhole-files/relay.yaml /root/pinhole-files/relay.key /etc/pinhole/
	cp /root/pinhole-files/pinhole-relay.service /etc/systemd/system/
	systemctl daemon-reload
	systemctl enable --now pinhole-relay' > "$t/install.log" 2>&1 || { bad "install:"; cat "$t/install.log"; }
mainpid() { I systemctl show -P MainPID pinhole-relay; }
p1=$(mainpid)
if [ "$(I systemctl is-active pinhole-relay)" = active ] && [ "$p1" != 0 ]; then ok "systemctl enable --now: active, pid $p1"
else bad "not active:"; I systemctl status --no-pager pinhole-relay || true; I journalctl --no-pager -u pinhole-relay | tail; fi
uid=$(I sh -c "awk '/^Uid:/ {print \$2}' /proc/$p1/status" || true)
caps=$(I sh -c "awk '/^CapEff:/ {print \$2}' /proc/$p1/status" || true)
user=$(I id -un "$uid" 2>/dev/null || echo "$uid")
[ "$user" = pinhole ] && [ "$caps" = 0000000000000400 ] &&
	ok "runs as $user (uid $uid), effective capabilities $caps (CAP_NET_BIND_SERVICE only)" || bad "runs as $user, CapEff $caps"
# An agent (run as a transient unit) registers port 443 on the relay.
I systemd-run --unit=agent-test /usr/local/bin/pinhole agent -c /etc/pinhole-agent/agent.yaml > /dev/null 2>&1
i=0; until I ss -Hltn 'sport = :443' | grep -q 443 || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
[ $i -lt 100 ] && ok "the relay, unprivileged, listens on port 443 for the agent's exposure" ||
	{ bad "no listener on 443:"; I journalctl --no-pager -u pinhole-relay -u agent-test | tail; }

# reload: SIGHUP to the same process, new config applied
I sh -c 'sed -i "s|allow_ports: \[\"443/tcp\"\]|allow_ports: [\"443/tcp\", \"8443/tcp\"]|" /etc/pinhole/relay.yaml'
I systemctl reload pinhole-relay || true
i=0; until I journalctl --no-pager -u pinhole-relay | grep -q "relay config reloaded" || [ $i -ge 50 ]; do sleep 0.1; i=$((i + 1)); done
[ $i -lt 50 ] && [ "$(mainpid)" = "$p1" ] && ok "systemctl reload: SIGHUP, same pid $p1, \"relay config reloaded\" in the journal" ||
	bad "reload: pid $p1 -> $(mainpid)"

# crash: restarted
[ "$p1" != 0 ] || { echo "systemd-test: no relay process; stopping here"; exit 1; }
I kill -9 "$p1"
i=0; until { p2=$(mainpid); [ "$p2" != 0 ] && [ "$p2" != "$p1" ] && [ "$(I systemctl is-active pinhole-relay)" = active ]; } || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
[ $i -lt 100 ] && ok "kill -9 $p1: restarted as $p2 (Restart=on-failure, $((i / 10)).$((i % 10)) s)" || bad "not restarted after kill -9"

# a broken config: refused with file:line
I sh -c 'sed -i "s|^listen: .*|listen: 127.0.0.1:99999|" /etc/pinhole/relay.yaml'
if I systemctl restart pinhole-relay > /dev/null 2>&1; then bad "restart with a broken config succeeded"; fi
sleep 0.5
I journalctl --no-pager -u pinhole-relay | grep -q "/etc/pinhole/relay.yaml:1: listen" &&
	ok "broken relay.yaml: systemctl restart fails, the journal has $(I journalctl --no-pager -u pinhole-relay | grep -m1 -o '/etc/pinhole/relay.yaml:1: listen[^"]*' | head -c 70)" ||
	{ bad "broken config not in the journal:"; I journalctl --no-pager -u pinhole-relay | tail -5; }
I systemctl stop pinhole-relay agent-test > /dev/null 2>&1 || true

score=$(I systemd-analyze security pinhole-relay.service 2>/dev/null | sed -n 's/.*Overall exposure level for pinhole-relay.service: //p')
[ -n "$score" ] && ok "systemd-analyze security: exposure $score" || bad "no security score"
echo "systemd-test: pinhole-relay.service exposure $score"
[ "$fails" -eq 0 ]
