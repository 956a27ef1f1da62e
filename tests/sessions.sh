#!/usr/bin/env bash
# End-to-end test of real human sessions on this host: ssh (command,
# interactive, tmux), sudo, sudo -s, sudo -i, su, su -, sudo su -, login -f,
# getty; cron jobs, sudoedit and passwd (seen by the kernel watch only); a
# session's sudo chmod (the library's attrib hooks); a collector that is down
# or stuck.
#
# It changes the host while it runs and puts back what was there at exit
# (also when a check fails or the run is interrupted: trap on EXIT, INT, TERM):
#   - first it moves aside (renames, on the same filesystem: instant, contents,
#     owners, modes and times kept) every path scripts/install, the tests and
#     scripts/uninstall --purge write: /etc/filetrail, /var/lib/filetrail
#     (a history kept by an earlier uninstall), /var/log/filetrail,
#     /run/filetrail (the spool), /var/spool/filetrail, /usr/local/lib/filetrail,
#     /usr/local/bin/collector, the units in /etc/systemd/system, the sshd
#     drop-in, and its own /etc/filetrail-test, /etc/sudoers.d/filetrail-test,
#     /etc/cron.d/filetrail-test; each X goes to .X.saved-by-sessions-test
#     beside it. It copies the PAM files install edits (/etc/pam.d/{sshd,
#     login,su,sudo,sudo-i}). Before that it puts a marker file into
#     /var/lib/filetrail (creating the directory if absent);
#   - installs openssh-server, sudo, cron, tmux with apt-get if missing
#     (packages are left installed),
#   - scripts/install --start (the real /etc/pam.d lines, /usr/local/lib/filetrail,
#     /etc/filetrail, a collector on /run/filetrail/collector.sock),
#   - creates users alice (sudo, NOPASSWD) and bob (a password), ssh keys,
#     /etc/sudoers.d/filetrail-test, /etc/cron.d/filetrail-test, /etc/filetrail-test/,
#   - runs its own sshd on 127.0.0.1:2222 and cron (unless one runs already),
# then scripts/uninstall --purge (which only ever sees what the tests
# created), checks that it left no filetrail path and /etc/pam.d as before,
# deletes what the tests left at the moved paths, moves the saved ones back,
# checks every saved path (the marker and the history included) is exactly
# as before, deletes the users and stops what it started (by pid).
# bob changes his own password with passwd (row r13): /etc/shadow loses his
# entry with him, and is checked to be as before at the end.
# (login, su and sshd append their usual records to wtmp/lastlog.)
#
# Usage (root): tests/sessions.sh [--no-build]
# Exit status: 0 every check passed, 1 some failed (or a killed run left
# saved paths: it prints how to put them back), 77 skipped (not root,
# filetrail installed here: /etc/filetrail or a collector answering on its
# socket, users alice/bob exist, port 2222 busy).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
build_opt=()
[ "${1:-}" = --no-build ] && build_opt=(--no-build)

skip() { echo "sessions: SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (it installs filetrail into the host's PAM and creates users)"
SOCK=/run/filetrail/collector.sock
answers() { # a process accepts connections on $SOCK (without python3: the socket exists)
    [ -S "$SOCK" ] || return 1
    command -v python3 >/dev/null || return 0
    python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1])' "$SOCK" 2>/dev/null
}
answers && skip "filetrail is installed and running on this host (a collector answers on $SOCK): the session tests do not install over it"
[ -e /etc/filetrail ] && skip "filetrail is installed on this host (/etc/filetrail): the session tests do not install over it"
grep -qs 'filetrail-managed' /etc/pam.d/* && skip "/etc/pam.d has filetrail lines already: the session tests do not install over them"
for u in alice bob; do id "$u" >/dev/null 2>&1 && skip "user $u exists (the test creates and deletes alice and bob)"; done
(exec 3<>/dev/tcp/127.0.0.1/2222) 2>/dev/null && skip "127.0.0.1:2222 is in use"

# What the run moves aside and puts back (see the header). SAVED(X) is
# .X.saved-by-sessions-test beside X: a run killed with SIGKILL (no trap)
# leaves them there, and the next run refuses until they are put back.
OWNED=(/etc/filetrail /var/lib/filetrail /var/log/filetrail /run/filetrail /var/spool/filetrail
       /usr/local/lib/filetrail /usr/local/bin/collector
       /etc/systemd/system/filetrail.service /etc/systemd/system/filetrail.socket
       /etc/systemd/system/filetrail-collector.service /etc/ssh/sshd_config.d/filetrail.conf
       /etc/filetrail-test /etc/sudoers.d/filetrail-test /etc/cron.d/filetrail-test)
# The test's own files: still in use after uninstall (sudo in the last check).
OWN_TEST=(/etc/filetrail-test /etc/sudoers.d/filetrail-test /etc/cron.d/filetrail-test)
EDITED=(/etc/pam.d/sshd /etc/pam.d/login /etc/pam.d/su /etc/pam.d/sudo /etc/pam.d/sudo-i)
STATE=/var/lib/filetrail
MARKER=$STATE/sessions-test-marker
saved() { echo "$(dirname "$1")/.$(basename "$1").saved-by-sessions-test"; }
for p in "${OWNED[@]}"; do
    s=$(saved "$p")
    if [ -e "$s" ] || [ -L "$s" ]; then
        echo "sessions: FAIL: $s is the host's $p, saved by a run that was killed; undo that run first:" \
            "scripts/uninstall --purge; rm -rf $p; mv $s $p"
        exit 1
    fi
done

PORT=2222
DB=/var/lib/filetrail/trail.db
COLLECTOR=/usr/local/bin/collector
T=/etc/filetrail-test
CLEAN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORK=$(mktemp -d /tmp/filetrail-sessions.XXXXXX)
chmod 755 "$WORK"
OUT=$WORK/out            # what the sessions report about themselves
mkdir -m 1777 "$OUT"
TM="tmux -S $WORK/tmux.sock"
# Diagnostics: the process ancestry of the shell that runs this, as the
# collector can see it in /proc, up to the first process outside its audit
# session (printed for rows that fail).
cat > "$OUT/anc" <<'EOF'
#!/bin/sh
p=$PPID
first=$(cat /proc/$p/sessionid)
while [ "$p" -gt 1 ]; do
    set -- $(awk '/^PPid:/ {pp = $2} /^Uid:/ {r = $2; e = $3} END {print pp, r, e}' /proc/$p/status)
    s=$(cat /proc/$p/sessionid)
    printf '%7s ppid=%-7s ruid=%-5s euid=%-5s tty=%-7s loginuid=%-5s session=%-4s %s\n' "$p" "$1" "$2" "$3" \
        "$(ps -o tty= -p "$p")" "$(cat /proc/$p/loginuid)" "$s" "$(cat /proc/$p/comm)"
    [ "$s" = "$first" ] || break
    p=$1
done
EOF
chmod 755 "$OUT/anc"

# ------------------------------------------------------------------ cleanup
made_state=0 processed=() restored=0
installed=0 uninstalled=0 users_created=() made_run_sshd=0 host_changed=0 sshd_pid= cron_pid= made_cron_pidfile=0 stuck_pid=
cleanup() {
    set +e
    trap '' INT TERM  # putting the host back is not interrupted
    echo "==> cleanup"
    $TM kill-server 2>/dev/null
    [ -n "$stuck_pid" ] && kill "$stuck_pid" 2>/dev/null
    if [ -n "$sshd_pid" ]; then
        for p in $(ps -o pid= --ppid "$sshd_pid" 2>/dev/null); do kill "$p" 2>/dev/null; done
        kill "$sshd_pid" 2>/dev/null && echo "  stopped sshd pid $sshd_pid"
    fi
    if [ -n "$cron_pid" ]; then
        for p in $(ps -o pid= --ppid "$cron_pid" 2>/dev/null); do kill "$p" 2>/dev/null; done
        kill "$cron_pid" 2>/dev/null && echo "  stopped cron pid $cron_pid"
        for _ in $(seq 50); do [ -d "/proc/$cron_pid" ] || break; sleep 0.1; done
        [ "$made_cron_pidfile" = 1 ] && rm -f /run/crond.pid
    fi
    # every process left of the test users (tmux servers, shells), by pid
    for u in "${users_created[@]}"; do
        for _ in 1 2 3; do
            pids=$(ps -o pid= -U "$u" 2>/dev/null; ps -o pid= -u "$u" 2>/dev/null)
            [ -z "$pids" ] && break
            kill $pids 2>/dev/null; sleep 0.3
        done
        pids=$(ps -o pid= -U "$u" 2>/dev/null; ps -o pid= -u "$u" 2>/dev/null)
        [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
    done
    sleep 0.2
    if [ "$installed" = 1 ] && [ "$uninstalled" = 0 ]; then scripts/uninstall --purge | sed 's/^/  /'; fi
    # the tests' own files ($T, sudoers, cron) go with the saved paths
    if [ "$restored" = 0 ] && [ ${#processed[@]} -gt 0 ]; then
        restore_host
        check_restored || host_changed=1
    fi
    unmark
    for u in "${users_created[@]}"; do userdel -r "$u" 2>/dev/null; echo "  deleted user $u"; done
    # useradd/userdel leave their own backups (/etc/passwd- ...): put back the
    # ones from before the test when the files themselves are as before.
    if [ ${#users_created[@]} -gt 0 ]; then
        for f in passwd group shadow gshadow subuid subgid; do
            if [ -e "$WORK/etc/$f-" ] && cmp -s "/etc/$f" "$WORK/etc/$f"; then cp -p "$WORK/etc/$f-" "/etc/$f-"; fi
        done
        # bob changed his password (r13): the account files must hold every
        # line they held before and none of the test users' (other tests may
        # add their own users meanwhile, so not a byte comparison).
        for f in passwd group shadow gshadow; do
            [ -e "$WORK/etc/$f" ] || continue
            if grep -qE '^(alice|bob):' "/etc/$f" || ! python3 -c 'import sys
now = set(open(sys.argv[1]).read().splitlines())
sys.exit(not all(l in now for l in open(sys.argv[2]).read().splitlines()))' "/etc/$f" "$WORK/etc/$f"; then
                echo "  FAIL /etc/$f is not as before the test"; host_changed=1
            fi
        done
    fi
    [ "$made_run_sshd" = 1 ] && rmdir /run/sshd 2>/dev/null
    rm -rf "$WORK"
    [ "$host_changed" = 0 ] || exit 1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ results
fails=0 passes=0
RESULTS=$WORK/results
pass() { passes=$((passes + 1)); printf '  PASS %s\n' "$*" | tee -a "$RESULTS"; }
fail() { fails=$((fails + 1)); printf '  FAIL %s\n' "$*" | tee -a "$RESULTS"; }

# ------------------------------------------------------------------ the host's paths: saved, put back
state_of() { # path...: a line per entry under each: type mode owner size mtime sha256 path ("absent path" if none)
    local p y m o z t f h
    for p in "$@"; do
        if [ ! -e "$p" ] && [ ! -L "$p" ]; then echo "absent $p"; continue; fi
        find "$p" -printf '%y %m %u:%g %s %T@ %p\n' | LC_ALL=C sort -k6 | while read -r y m o z t f; do
            h=-; [ "$y" = f ] && h=$(sha256sum < "$f" | cut -d' ' -f1)
            echo "$y $m $o $z $t $h $f"
        done
    done
}
state_mtime=
mark() { # the marker the end checks: in /var/lib/filetrail, where a kept history lives
    if [ -d "$STATE" ]; then state_mtime=$(stat -c %.9Y "$STATE"); else install -d -m 0700 "$STATE" && made_state=1; fi
    head -c 512 /dev/urandom | base64 > "$WORK/marker"
    cp "$WORK/marker" "$MARKER"
    echo "  marker $MARKER$([ "$made_state" = 1 ] && echo " (in $STATE, created for it)")"
}
unmark() {
    [ -f "$WORK/marker" ] || return 0
    rm -f "$MARKER" "$WORK/marker"
    if [ "$made_state" = 1 ]; then rmdir "$STATE" 2>/dev/null || echo "  KEPT $STATE (not empty)"; fi
    # the marker came and went: the directory's time as it was
    if [ -n "$state_mtime" ] && [ -d "$STATE" ]; then touch -m -d "@$state_mtime" "$STATE"; fi
}
save_host() { # OWNED: renamed aside (only these are touched at exit); EDITED: copied
    local p s f interrupted=0
    trap 'interrupted=1' INT TERM  # a rename and its record are not separated
    mkdir -p "$WORK/edited"
    for f in "${EDITED[@]}"; do [ -f "$f" ] && cp -p "$(readlink -f "$f")" "$WORK/edited/${f##*/}"; done
    for p in "${OWNED[@]}"; do
        if [ -e "$p" ] || [ -L "$p" ]; then
            s=$(saved "$p")
            mv -T "$p" "$s" || { echo "sessions: cannot move $p aside"; exit 1; }
            echo "  moved aside $p -> $s"
        fi
        processed+=("$p")
    done
    trap 'exit 130' INT TERM
    [ "$interrupted" = 0 ] || exit 130
}
restore_host() { # what the tests left at the saved paths is deleted; the host's own is moved back
    local p s f r c
    restored=1
    echo "==> putting back what was there before the tests"
    for p in "${processed[@]}"; do
        s=$(saved "$p")
        if [ -e "$p" ] || [ -L "$p" ]; then rm -rf "$p" && echo "  removed $p (the tests' own)"; fi
        if [ -e "$s" ] || [ -L "$s" ]; then mv -T "$s" "$p" && echo "  put back $p"; fi
    done
    for f in "${EDITED[@]}"; do
        c=$WORK/edited/${f##*/}
        [ -f "$c" ] || continue
        r=$(readlink -f "$f")
        if ! cmp -s "$c" "$r" || [ "$(stat -c %a.%u.%g "$c")" != "$(stat -c %a.%u.%g "$r")" ]; then
            cp -p "$c" "$r" && echo "  put back $f (it differed from before the tests)"
        fi
    done
}
check_restored() { # every saved path is as before (contents, owners, modes, times), the marker and history too
    local ok=0 n
    state_of "${OWNED[@]}" > "$WORK/state-after"
    if diff "$WORK/state-before" "$WORK/state-after" > "$WORK/state-diff"; then
        pass "restore: the $(grep -vc '^absent ' "$WORK/state-before") entries under the saved paths are as before (contents, owners, modes, times); $(grep -c '^absent ' "$WORK/state-before") absent paths absent again"
    else
        fail "restore: the saved paths differ from before the tests:"; sed 's/^/         /' "$WORK/state-diff"; ok=1
    fi
    if cmp -s "$WORK/marker" "$MARKER"; then
        pass "restore: marker $MARKER is there, byte-identical"
    else
        fail "restore: marker $MARKER is missing or changed"; ok=1
    fi
    n=$(grep -c "^f .* $STATE/" "$WORK/state-before")
    if [ "$n" -gt 1 ]; then  # more than the marker: a history kept here before the tests
        if diff <(grep " $STATE" "$WORK/state-before") <(grep " $STATE" "$WORK/state-after") >/dev/null; then
            pass "restore: the history kept in $STATE is byte-identical: $((n - 1)) files besides the marker ($(grep "^f .* $STATE/" "$WORK/state-before" | grep -v "$MARKER" | awk '{print $NF}' | xargs -n1 basename | paste -sd, -)), same sha256, owners, modes, times"
        else
            fail "restore: the history kept in $STATE changed"; ok=1
        fi
    fi
    return $ok
}

# ------------------------------------------------------------------ packages
need=()
command -v /usr/sbin/sshd >/dev/null || need+=(openssh-server)
command -v sudo >/dev/null || need+=(sudo)
command -v /usr/sbin/cron >/dev/null || need+=(cron)
command -v tmux >/dev/null || need+=(tmux)
command -v /sbin/agetty >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
    echo "==> apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null || skip "cannot install ${need[*]}"
fi
command -v python3 >/dev/null || skip "python3 is needed to read the collector's JSON"

# ------------------------------------------------------------------ save
echo "==> saving what install, the tests and uninstall --purge touch (put back at exit)"
mark
state_of "${OWNED[@]}" > "$WORK/state-before"
save_host
# What uninstall must leave as install found it: the PAM, sshd and sudoers
# files, and (the host's own moved aside) no filetrail path at all.
snapshot() {
    local f p t
    for f in /etc/pam.d/* /etc/ssh/sshd_config /etc/ssh/sshd_config.d/* /etc/sudoers /etc/sudoers.d/*; do
        [ "$f" = /etc/sudoers.d/filetrail-test ] && continue
        [ -f "$f" ] && echo "$(stat -L -c '%a %U:%G' "$f") $(sha256sum "$f")"
    done
    for p in "${OWNED[@]}"; do
        for t in "${OWN_TEST[@]}"; do [ "$p" = "$t" ] && continue 2; done
        [ -e "$p" ] && echo "present $p"
    done
    true
}
snapshot > "$WORK/host-before"

# ------------------------------------------------------------------ install
echo "==> scripts/install --start ${build_opt[*]}"
installed=1
if ! scripts/install --start "${build_opt[@]}" > "$WORK/install.log" 2>&1; then
    cat "$WORK/install.log"; echo "sessions: scripts/install failed"; exit 1
fi
sed 's/^/  | /' "$WORK/install.log"

# ------------------------------------------------------------------ users, files
echo "==> users alice (sudo NOPASSWD) and bob (password), keys, tracked files under $T"
bob_pw="Pw-$RANDOM-$RANDOM-x"
mkdir "$WORK/etc"
for f in passwd group shadow gshadow subuid subgid; do
    [ -e "/etc/$f" ] && cp -p "/etc/$f" "$WORK/etc/$f"
    [ -e "/etc/$f-" ] && cp -p "/etc/$f-" "$WORK/etc/$f-"
done
for u in alice bob; do
    useradd -m -s /bin/bash "$u" || { echo "useradd $u failed"; exit 1; }
    users_created+=("$u")
    ssh-keygen -q -t ed25519 -N '' -f "$WORK/key_$u"
    install -d -m 700 -o "$u" -g "$u" "/home/$u/.ssh"
    install -m 600 -o "$u" -g "$u" "$WORK/key_$u.pub" "/home/$u/.ssh/authorized_keys"
done
echo "bob:$bob_pw" | chpasswd
printf 'alice ALL=(ALL:ALL) NOPASSWD: ALL\n' > "$WORK/sudoers"
visudo -cqf "$WORK/sudoers" && install -m 440 "$WORK/sudoers" /etc/sudoers.d/filetrail-test
uid_alice=$(id -u alice) uid_bob=$(id -u bob)
install -d -m 755 "$T" "$T/root"
install -d -m 755 -o alice -g alice "$T/alice"
install -d -m 755 -o bob -g bob "$T/bob"
mkfile() { # owner path
    printf 'v=0\n' > "$2"; chown "$1:$1" "$2"
}

# ------------------------------------------------------------------ sshd, cron
echo "==> sshd on 127.0.0.1:$PORT (the host's /etc/ssh/sshd_config and /etc/pam.d/sshd), cron"
[ -d /run/sshd ] || { mkdir -m 755 /run/sshd; made_run_sshd=1; }
ssh-keygen -q -t ed25519 -N '' -f "$WORK/hostkey"
env -i PATH=$CLEAN_PATH /usr/sbin/sshd -D -p "$PORT" -o ListenAddress=127.0.0.1 -o PidFile=none \
    -h "$WORK/hostkey" -E "$WORK/sshd.log" &
sshd_pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
SSH_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -p "$PORT")
ssh_as() { # user command (non-interactive: no tty)
    local u=$1; shift
    ssh -i "$WORK/key_$u" "${SSH_OPTS[@]}" "$u@127.0.0.1" "$@"
}
ssh_cmdline() { echo "ssh -i $WORK/key_$1 ${SSH_OPTS[*]} $1@127.0.0.1"; }

for f in r9_cron r9b_cron_sudo; do mkfile root "$T/root/$f.conf"; done
cat > /etc/cron.d/filetrail-test <<EOF
# filetrail tests/sessions.sh (removed at exit)
* * * * * root sed -i 's/^v=.*/v=cron/' $T/root/r9_cron.conf
* * * * * alice sudo -n sed -i 's/^v=.*/v=cron-sudo/' $T/root/r9b_cron_sudo.conf
EOF
chmod 644 /etc/cron.d/filetrail-test
if [ -f /run/crond.pid ] && [ -d "/proc/$(cat /run/crond.pid 2>/dev/null)" ]; then
    echo "  cron runs already (pid $(cat /run/crond.pid)): it reads /etc/cron.d/filetrail-test"
else
    [ -e /run/crond.pid ] || made_cron_pidfile=1
    env -i PATH=$CLEAN_PATH /usr/sbin/cron -f &
    cron_pid=$!
fi
cron_start=$(date +%s)

# ------------------------------------------------------------------ helpers
# The sessions' versions, as collector query --json prints them.
versions() { "$COLLECTOR" query --db "$DB" --json "$1" 2>/dev/null; }
wait_versions() { # path n [seconds]
    local end=$((SECONDS + ${3:-10}))
    while [ $SECONDS -lt $end ]; do
        [ "$(versions "$1" | grep -c .)" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
conn_client() { # "ip port ip port" -> "ip:port"
    awk '{ if (NF >= 2) printf "%s:%s", $1, $2 }' "$1" 2>/dev/null
}
json_str() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]) if sys.argv[1] else "null")' "${1:-}"; }

cat > "$WORK/check.py" <<'EOF'
# check.py ROW FILE key=JSON ... : one version of FILE whose fields equal the
# given JSON values. Prints one PASS/FAIL line per field.
# With AFTER_ID=N in the environment, only versions with a higher id count.
import hashlib, json, os, subprocess, sys
row, db, path, *wants = sys.argv[1:]
out = subprocess.run(["/usr/local/bin/collector", "query", "--db", db, "--json", path],
                     capture_output=True, text=True).stdout
vs = [json.loads(l) for l in out.splitlines() if l.strip()]
vs = [v for v in vs if v["id"] > int(os.environ.get("AFTER_ID", "0"))]
# The kernel watch may record the test's own creation of the file (mkfile,
# not under the library) before the session's edit: not the session's.
FIXTURE = hashlib.sha256(b"v=0\n").hexdigest()
vs = [v for v in vs if not (v.get("seen_by") == "kernel" and v.get("action") == "create" and v.get("after") == FIXTURE)]
res = []
if len(vs) != 1:
    res.append(("FAIL", f"{row}: {len(vs)} versions of {path}, want 1" + "".join(
        f"\n         {v.get('id')} {v.get('user')} {v.get('chain')} {v.get('exe')}" for v in vs)))
if vs:
    v = vs[-1]
    for w in wants:
        k, _, j = w.partition("=")
        want = json.loads(j)
        got = v
        for part in k.split("."):  # trust.user: a field of an object
            got = got.get(part) if isinstance(got, dict) else None
        if k == "session" and got is not None:
            got = str(got)
            want = None if want is None else str(want)
        ok = got == want
        res.append(("PASS" if ok else "FAIL",
                    f"{row}: {k} = {json.dumps(got)}" + ("" if ok else f", want {json.dumps(want)}")))
for s, m in res:
    print(f"  {s} {m}")
EOF
check() { # row path key=json...
    local row=$1 path=$2; shift 2
    local before=$fails
    wait_versions "$path" 1 10
    while IFS= read -r line; do
        case $line in
            *PASS*) passes=$((passes + 1)) ;;
            *FAIL*) fails=$((fails + 1)) ;;
        esac
        echo "$line" | tee -a "$RESULTS"
    done < <(python3 "$WORK/check.py" "$row" "$DB" "$path" "$@")
    if [ "$fails" != "$before" ] && [ -s "$OUT/$row.anc" ]; then
        echo "         ancestry of the writer's shell (pid ppid ruid euid tty loginuid session comm):"
        sed 's/^/         /' "$OUT/$row.anc"
    fi
}
check_kernel() { # row path want users [seconds]: the edit ($want, a line) was seen by the kernel watch only,
    # attributed to one of the comma-separated users (never to a human outside a registered login)
    local row=$1 path=$2 want=$3 users=$4 end=$((SECONDS + ${5:-10}))
    while [ $SECONDS -lt $end ] && ! grep -qx "$want" "$path"; do sleep 0.5; done
    if ! grep -qx "$want" "$path"; then fail "$row: the edit did not happen ($path holds $(cat "$path"))"; return; fi
    local sha; sha=$(printf '%s\n' "$want" | sha256sum | cut -d' ' -f1)
    # The watch looks 2.5 s after the last event: wait for that version (the
    # test's own creation of the file may be there already).
    end=$((SECONDS + 10))
    while [ $SECONDS -lt $end ] && ! versions "$path" | grep -q "\"after\":\"$sha\""; do sleep 0.2; done
    local users_json; users_json=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1].split(",")))' "$users")
    check "$row" "$path" seen_by='"kernel"' after="\"$sha\"" user="$(python3 "$WORK/pick.py" "$DB" "$path" "$users_json")"
}
cat > "$WORK/pick.py" <<'EOF'
# pick.py DB PATH USERS_JSON: the newest version's user when it is one of
# USERS (so that check compares equal), else a JSON string that is not.
# AFTER_ID as in check.py.
import json, os, subprocess, sys
db, path, users = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
out = subprocess.run(["/usr/local/bin/collector", "query", "--db", db, "--json", path], capture_output=True, text=True).stdout
vs = [json.loads(l) for l in out.splitlines() if l.strip()]
vs = [v for v in vs if v["id"] > int(os.environ.get("AFTER_ID", "0"))]
user = vs[-1].get("user") if vs else None
print(json.dumps(user if user in users else "one of " + ",".join(users)))
EOF

# tmux-driven terminals: root's own tmux server (clean environment) whose
# panes run ssh, login or getty: real ptys, as a human would type.
tnew() { # name command...
    env -i PATH=$CLEAN_PATH HOME="$WORK" TERM=xterm $TM new-session -d -s "$1" -x 220 -y 50 "$2"
}
tsend() { $TM send-keys -t "$1" -l -- "$2"; $TM send-keys -t "$1" Enter; }
twait() { # name regex [seconds]
    local end=$((SECONDS + ${3:-15}))
    while [ $SECONDS -lt $end ]; do
        $TM capture-pane -p -J -t "$1" -S - 2>/dev/null | grep -qE -- "$2" && return 0
        sleep 0.1
    done
    echo "  (timeout waiting for /$2/ in terminal $1; it shows:)"
    $TM capture-pane -p -J -t "$1" -S - 2>/dev/null | grep -v '^$' | tail -n 15 | sed 's/^/  | /'
    return 1
}
K=0
trun() { # name command: type it, wait until it has run (a marker only its output contains)
    K=$((K + 1))
    local m=$((100000 + K))
    tsend "$1" "$2; echo @@\$(( $m + 1 ))@@"
    twait "$1" "@@$((m + 1))@@" "${3:-15}"
}
tclose() { # name: keep what the terminal showed, type exit until the pane is gone
    local i
    $TM capture-pane -p -J -t "$1" -S - > "$WORK/screen-$1.txt" 2>/dev/null
    for i in 1 2 3 4 5; do
        $TM has-session -t "$1" 2>/dev/null || return 0
        tsend "$1" exit; sleep 0.5
    done
    $TM kill-session -t "$1" 2>/dev/null
}
tssh() { # name user: a terminal running an interactive ssh login, at its prompt
    tnew "$1" "$(ssh_cmdline "$2")"
    twait "$1" "$2@"
}
# Inside a terminal: remember the session's own facts (before any sudo/su).
remember() { # name row
    trun "$1" "echo \"\$SSH_CONNECTION\" > $OUT/$2.conn; tty > $OUT/$2.tty; cat /proc/self/sessionid > $OUT/$2.sid"
}
sq() { cat "$OUT/$1" 2>/dev/null; }

echo "==> rows"
# ------------------------------------------------------------------ R1 ssh cmd
row=r1_ssh_cmd; f=$T/alice/$row.conf; mkfile alice "$f"
ssh_as alice "echo \"\$SSH_CONNECTION\" > $OUT/$row.conn; cat /proc/self/sessionid > $OUT/$row.sid; sed -i 's/^v=.*/v=1/' $f" 2> "$WORK/$row.err"
[ -s "$WORK/$row.err" ] && fail "$row: stderr: $(cat "$WORK/$row.err")" || pass "$row: ssh command ran, nothing on stderr"
check "$row" "$f" user='"alice"' chain='["alice"]' uid=$uid_alice euid=$uid_alice tty=null sudo_user=null \
    ssh_client="$(json_str "$(conn_client "$OUT/$row.conn")")" session="$(json_str "$(sq $row.sid)")" exe='"/usr/bin/sed"' \
    unregistered_session=false trust.user='"verified"' trust.session='"verified"' trust.ssh_client='"verified"'

# ------------------------------------------------------------------ R2 interactive ssh
row=r2_ssh_interactive; f=$T/alice/$row.conf; mkfile alice "$f"
tssh "$row" alice
remember "$row" "$row"
trun "$row" "sed -i 's/^v=.*/v=2/' $f"
tclose "$row"
check "$row" "$f" user='"alice"' chain='["alice"]' uid=$uid_alice euid=$uid_alice sudo_user=null \
    tty="$(json_str "$(sq $row.tty)")" ssh_client="$(json_str "$(conn_client "$OUT/$row.conn")")" session="$(json_str "$(sq $row.sid)")"

# ------------------------------------------------------------------ R3 ssh cmd + sudo
row=r3_ssh_sudo_cmd; f=$T/root/$row.conf; mkfile root "$f"
ssh_as alice "echo \"\$SSH_CONNECTION\" > $OUT/$row.conn; cat /proc/self/sessionid > $OUT/$row.sid; sudo sed -i 's/^v=.*/v=3/' $f" 2> "$WORK/$row.err"
[ -s "$WORK/$row.err" ] && fail "$row: stderr: $(cat "$WORK/$row.err")" || pass "$row: ssh 'sudo sed' ran, nothing on stderr"
check "$row" "$f" user='"alice"' chain='["alice","root"]' uid=0 euid=0 tty=null sudo_user='"alice"' \
    ssh_client="$(json_str "$(conn_client "$OUT/$row.conn")")" session="$(json_str "$(sq $row.sid)")" \
    unregistered_session=false trust.user='"verified"' trust.ssh_client='"verified"'

# ------------------------------------------------------------------ R3b interactive ssh + sudo cmd
row=r3b_ssh_tty_sudo_cmd; f=$T/root/$row.conf; mkfile root "$f"
tssh "$row" alice
remember "$row" "$row"
trun "$row" "sudo $OUT/anc > $OUT/$row.anc; sudo sed -i 's/^v=.*/v=3b/' $f"
tclose "$row"
check "$row" "$f" user='"alice"' chain='["alice","root"]' uid=0 euid=0 sudo_user='"alice"' \
    tty="$(json_str "$(sq $row.tty)")" ssh_client="$(json_str "$(conn_client "$OUT/$row.conn")")" session="$(json_str "$(sq $row.sid)")"

# ------------------------------------------------------------------ R4 sudo -i
row=r4_ssh_sudo_i; f=$T/root/$row.conf; mkfile root "$f"
tssh "$row" alice
remember "$row" "$row"
tsend "$row" "sudo -i"
trun "$row" "$OUT/anc > $OUT/$row.anc; sed -i 's/^v=.*/v=4/' $f"
tclose "$row"
check "$row" "$f" user='"alice"' chain='["alice","root"]' uid=0 euid=0 sudo_user='"alice"' \
    tty="$(json_str "$(sq $row.tty)")" ssh_client="$(json_str "$(conn_client "$OUT/$row.conn")")" session="$(json_str "$(sq $row.sid)")"

# ------------------------------------------------------------------ R4b sudo -s
row=r4b_ssh_sudo_s; f=$T/root/$row.conf; mkfile root "$f"
tssh "$row" alice
remember "$row" "$row"
tsend "$row" "sudo -s"
trun "$row" "$OUT/anc > $OUT/$row.anc; sed -i 's/^v=.*/v=4b/' $f"
tclose "$row"
check "$row" "$f" user='"alice"' chain='["alice","root"]' uid=0 euid=0 sudo_user='"alice"' \
    tty="$(json_str "$(sq $row.tty)")" ssh_client="$(json_str "$(conn_client "$OUT/$row.conn")")" session="$(json_str "$(sq $row.sid)")"

# ------------------------------------------------------------------ R5 su - bob (bob's password, typed)
for variant in r5_ssh_su_dash_bob r5b_ssh_su_bob; do
    row=$variant; f=$T/bob/$row.conf; mkfile bob "$f"
    tssh "$row" alice
    remember "$row" "$row"
    if [ "$row" = r5_ssh_su_dash_bob ]; then tsend "$row" "su - bob"; else tsend "$row" "su bob"; fi
    twait "$row" 'Password:' && tsend "$row" "$bob_pw"
    twait "$row" 'bob@'
    trun "$row" "$OUT/anc > $OUT/$row.anc; sed -i 's/^v=.*/v=5/' $f"
    tclose "$row"
    check "$row" "$f" user='"alice"' chain='["alice","bob"]' uid=$uid_bob euid=$uid_bob sudo_user=null \
        tty="$(json_str "$(sq $row.tty)")" ssh_client="$(json_str "$(conn_client "$OUT/$row.conn")")" session="$(json_str "$(sq $row.sid)")"
done

# ------------------------------------------------------------------ R6 sudo su -
row=r6_ssh_sudo_su_dash; f=$T/root/$row.conf; mkfile root "$f"
tssh "$row" alice
remember "$row" "$row"
tsend "$row" "sudo su -"
trun "$row" "$OUT/anc > $OUT/$row.anc; sed -i 's/^v=.*/v=6/' $f"
tclose "$row"
# sudo su - leaves no SUDO_USER in the final shell (FACTS.md): sudo_user is not checked here.
check "$row" "$f" user='"alice"' chain='["alice","root"]' uid=0 euid=0 \
    tty="$(json_str "$(sq $row.tty)")" ssh_client="$(json_str "$(conn_client "$OUT/$row.conn")")" session="$(json_str "$(sq $row.sid)")"

# ------------------------------------------------------------------ R7 login -f bob on a pty
row=r7_login_f_bob; f=$T/bob/$row.conf; mkfile bob "$f"
tnew "$row" "exec login -f bob"
twait "$row" 'bob@'
remember "$row" "$row"
trun "$row" "sed -i 's/^v=.*/v=7/' $f"
tclose "$row"
check "$row" "$f" user='"bob"' chain='["bob"]' uid=$uid_bob euid=$uid_bob sudo_user=null ssh_client=null \
    tty="$(json_str "$(sq $row.tty)")" session="$(json_str "$(sq $row.sid)")"

# ------------------------------------------------------------------ R7b getty -> login (console)
row=r7b_getty_autologin_bob; f=$T/bob/$row.conf; mkfile bob "$f"
tnew "$row" 'exec /sbin/agetty --autologin bob --noclear --nohints $(tty | sed s,/dev/,,) xterm'
twait "$row" 'bob@'
remember "$row" "$row"
trun "$row" "sed -i 's/^v=.*/v=7b/' $f"
tclose "$row"
check "$row" "$f" user='"bob"' chain='["bob"]' uid=$uid_bob euid=$uid_bob sudo_user=null ssh_client=null \
    tty="$(json_str "$(sq $row.tty)")" session="$(json_str "$(sq $row.sid)")"

# ------------------------------------------------------------------ R8 tmux inside alice's ssh session
row=r8_ssh_tmux; f=$T/alice/$row.conf; mkfile alice "$f"
tssh "$row" alice
remember "$row" "$row"
trun "$row" "tmux new-session -d -s work"
trun "$row" "tmux send-keys -t work 'tty > $OUT/$row.panetty; $OUT/anc > $OUT/$row.anc; sed -i s/^v=.*/v=8/ $f' Enter"
for _ in $(seq 100); do grep -qx 'v=8' "$f" && break; sleep 0.1; done
trun "$row" "tmux kill-server"
tclose "$row"
check "$row" "$f" user='"alice"' chain='["alice"]' uid=$uid_alice euid=$uid_alice sudo_user=null \
    tty="$(json_str "$(sq $row.panetty)")" ssh_client="$(json_str "$(conn_client "$OUT/$row.conn")")" session="$(json_str "$(sq $row.sid)")"

# ------------------------------------------------------------------ terminals: nothing unexpected
if grep -lE 'ld\.so|ERROR|libfiletrail' "$WORK"/screen-*.txt > "$WORK/noisy" 2>/dev/null; then
    fail "terminals showed loader or filetrail messages: $(cat "$WORK/noisy")"
    grep -hE 'ld\.so|ERROR|libfiletrail' "$WORK"/screen-*.txt | head -n 5 | sed 's/^/         /'
else
    pass "no terminal showed a loader error or any filetrail output ($(ls "$WORK"/screen-*.txt | wc -l) transcripts)"
fi

# ------------------------------------------------------------------ R9 cron
row=r9_cron
echo "  (waiting for cron's next minute: up to $((65 - ($(date +%s) - cron_start))) s)"
left=$((65 - ($(date +%s) - cron_start))); [ "$left" -lt 5 ] && left=5
# Cron jobs get no library (on purpose); the kernel watch records their
# edits, attributed to the process (or `unknown` once it is gone), never
# to the human whose login uid cron gave the job.
check_kernel r9_cron_root_job "$T/root/r9_cron.conf" v=cron root,unknown "$left"
check_kernel r9b_cron_job_runs_sudo "$T/root/r9b_cron_sudo.conf" v=cron-sudo root,unknown 10

# ------------------------------------------------------------------ R11 sudoedit
# The editor edits a copy in /var/tmp; the setuid sudo itself (no library)
# copies it back: only the kernel watch sees the tracked file change.
row=r11_sudoedit; f=$T/root/$row.conf; mkfile root "$f"
ssh_as alice "SUDO_EDITOR='sed -i s/^v=.*/v=11/' sudoedit $f" 2> "$WORK/$row.err"
check_kernel "$row" "$f" v=11 alice,unknown

# ------------------------------------------------------------------ R12 sudo chmod (library attrib hooks)
# A mode change is reported by the library like a write: one version, with
# the session's attribution; the kernel watch saw it too and adds nothing.
row=r12_ssh_sudo_chmod; f=$T/root/$row.conf; mkfile root "$f"; chmod 644 "$f"
ssh_as alice "echo \"\$SSH_CONNECTION\" > $OUT/$row.conn; cat /proc/self/sessionid > $OUT/$row.sid; sudo chmod 600 $f" 2> "$WORK/$row.err"
check "$row" "$f" action='"attrib"' seen_by='"library"' before_mode='"0644"' mode='"0600"' user='"alice"' \
    chain='["alice","root"]' uid=0 euid=0 sudo_user='"alice"' exe='"/usr/bin/chmod"' \
    ssh_client="$(json_str "$(conn_client "$OUT/$row.conn")")" session="$(json_str "$(sq $row.sid)")"
r12_file=$f  # checked again after r13: by then the kernel watch has looked at it

# ------------------------------------------------------------------ R13 passwd (setuid: kernel watch only)
# bob changes his own password, typed on a terminal. passwd is setuid root:
# the loader drops the library, only the kernel watch sees /etc/shadow
# replaced. /etc/shadow is redacted (the collector's default): the version
# says `redacted` and `show` refuses; no byte of bob's new entry is in the
# store. Attributed to passwd in bob's session (bob is the human here), or
# `unknown` if passwd had exited before the watch read the event.
row=r13_passwd
shadow_last=$(versions /etc/shadow | python3 -c 'import json,sys; print(max([json.loads(l)["id"] for l in sys.stdin if l.strip()] or [0]))')
new_pw="Tq.$(head -c 64 /dev/urandom | tr -dc 'a-vyzA-OQ-Z' | head -c 12).Zk"  # no character of $bob_pw's kind
tssh "$row" bob
remember "$row" "$row"
tsend "$row" "passwd"
twait "$row" 'Current password:' && tsend "$row" "$bob_pw"
twait "$row" 'New password:' && tsend "$row" "$new_pw"
twait "$row" 'Retype new password:' && tsend "$row" "$new_pw"
if twait "$row" 'password updated successfully'; then
    pass "$row: passwd changed bob's password"; bob_pw=$new_pw
else
    fail "$row: passwd did not change bob's password"
fi
tclose "$row"
end=$((SECONDS + 10))
while [ $SECONDS -lt $end ] && ! versions /etc/shadow | python3 -c 'import json,sys
sys.exit(not any(json.loads(l)["id"] > int(sys.argv[1]) for l in sys.stdin if l.strip()))' "$shadow_last"; do sleep 0.2; done
shadow_user=$(AFTER_ID=$shadow_last python3 "$WORK/pick.py" "$DB" /etc/shadow '["bob","unknown"]')
if [ "$shadow_user" = '"bob"' ]; then
    AFTER_ID=$shadow_last check "$row" /etc/shadow seen_by='"kernel"' action='"write"' content='"redacted"' \
        user='"bob"' exe='"/usr/bin/passwd"' uid=$uid_bob euid=0 tty="$(json_str "$(sq $row.tty)")" \
        ssh_client="$(json_str "$(conn_client "$OUT/$row.conn")")" session="$(json_str "$(sq $row.sid)")"
else
    AFTER_ID=$shadow_last check "$row" /etc/shadow seen_by='"kernel"' action='"write"' content='"redacted"' \
        user="$shadow_user"
fi
shadow_id=$(versions /etc/shadow | python3 -c 'import json,sys; print(max([json.loads(l)["id"] for l in sys.stdin if l.strip()] or [0]))')
if [ "$shadow_id" -gt "$shadow_last" ] && ! "$COLLECTOR" show --db "$DB" "$shadow_id" > "$WORK/$row.show" 2>&1 \
    && grep -q redacted "$WORK/$row.show"; then
    pass "$row: collector show refuses the redacted content ($(head -n 1 "$WORK/$row.show" | cut -c 1-80))"
else
    fail "$row: collector show of version $shadow_id did not refuse: $(head -c 80 "$WORK/$row.show")"
fi
# bob's new hash (never printed) is in no byte of the store.
if python3 -c 'import sys, glob
h = [l.split(":")[1] for l in open("/etc/shadow") if l.startswith("bob:")][0].encode()
sys.exit(len(h) < 20 or any(h in open(f, "rb").read() for f in glob.glob(sys.argv[1] + "*")))' "$DB"; then
    pass "$row: no byte of bob's new /etc/shadow entry is in the store"
else
    fail "$row: bob's /etc/shadow entry is in the store (or could not be read)"
fi
# r12 again: the watch has looked at that file by now (it was due first).
check r12_ssh_sudo_chmod "$r12_file" action='"attrib"' seen_by='"library"'

# ------------------------------------------------------------------ R10 collector down, then stuck
pidfile=/run/filetrail/collector.pid
cpid=$(cat "$pidfile")
kill "$cpid"; for _ in $(seq 50); do [ -d "/proc/$cpid" ] || break; sleep 0.1; done
for mode in down stuck; do
    row=r10_collector_$mode; f=$T/root/$row.conf; mkfile root "$f"
    if [ "$mode" = stuck ]; then
        # a socket that accepts connections into its backlog and never answers
        rm -f /run/filetrail/collector.sock
        python3 -c 'import os,socket,sys,time
s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666); s.listen(512); time.sleep(600)' /run/filetrail/collector.sock &
        stuck_pid=$!
        for _ in $(seq 50); do [ -S /run/filetrail/collector.sock ] && break; sleep 0.1; done
    fi
    t0=$(date +%s%N)
    ssh_as alice "sudo sed -i 's/^v=.*/v=10/' $f && echo x > $OUT/$row.alice; echo ok" > "$WORK/$row.out" 2> "$WORK/$row.err"
    rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    if [ $rc = 0 ] && [ "$(cat "$WORK/$row.out")" = ok ] && [ ! -s "$WORK/$row.err" ] && grep -qx v=10 "$f"; then
        pass "$row: ssh login + sudo sed worked, silent, in $ms ms"
    else
        fail "$row: exit $rc, stdout '$(cat "$WORK/$row.out")', stderr '$(cat "$WORK/$row.err")', file $(cat "$f")"
    fi
    [ "$ms" -lt 10000 ] && pass "$row: took $ms ms (< 10 s)" || fail "$row: took $ms ms"
    if [ "$mode" = stuck ]; then
        kill "$stuck_pid"; wait "$stuck_pid" 2>/dev/null; stuck_pid=
        rm -f /run/filetrail/collector.sock
    fi
done
echo "  restarting the collector: scripts/install --no-build --start"
scripts/install --no-build --start > "$WORK/install2.log" 2>&1 || { cat "$WORK/install2.log"; fail "re-install --start failed"; }
grep -E 'started collector|already running' "$WORK/install2.log" | sed 's/^/  | /'
row=r10c_collector_back; f=$T/root/$row.conf; mkfile root "$f"
ssh_as alice "sudo sed -i 's/^v=.*/v=10c/' $f" 2>/dev/null
check "$row" "$f" user='"alice"' chain='["alice","root"]'

# ------------------------------------------------------------------ uninstall
echo "==> scripts/uninstall --purge"
$TM kill-server 2>/dev/null
scripts/uninstall --purge > "$WORK/uninstall.log" 2>&1; rc=$?
uninstalled=1
sed 's/^/  | /' "$WORK/uninstall.log"
[ $rc = 0 ] && pass "uninstall: exit 0" || fail "uninstall: exit $rc"
snapshot > "$WORK/host-after"
if diff "$WORK/host-before" "$WORK/host-after" > "$WORK/host-diff"; then
    pass "uninstall: /etc/pam.d, sshd and sudoers files byte-identical to before install (owners, modes too); no filetrail paths left"
else
    fail "uninstall: host differs from before install:"; sed 's/^/         /' "$WORK/host-diff"
fi
ssh_as alice "echo \"\$LD_PRELOAD\"; sudo sh -c 'echo \"\$LD_PRELOAD\"'" > "$WORK/after.out" 2> "$WORK/after.err"
if [ -z "$(tr -d '\n' < "$WORK/after.out")" ] && [ ! -s "$WORK/after.err" ]; then
    pass "after uninstall: ssh and sudo sessions have no LD_PRELOAD and print nothing"
else
    fail "after uninstall: LD_PRELOAD '$(cat "$WORK/after.out")', stderr '$(cat "$WORK/after.err")'"
fi

restore_host
check_restored
unmark

echo "==> summary: $passes passed, $fails failed"
grep FAIL "$RESULTS" || true
[ "$fails" = 0 ]
