#!/bin/bash
# Install or upgrade the hrw agent on this server from the unpacked artifact (`make dist`).
# Run as root from the unpacked folder; see --help. It never uses the network except to ask the
# hrw proxy (below), and never a package index: pip runs with --no-index on the bundled wheels.
#
# What it does, in this order:
#   1. checks the flags, the bundle (SHA256SUMS), the platform and a supported CPython;
#   2. builds the venv of this release in /opt/hrw-agent/releases/<release> (a new folder; the
#      running agent and its files are not touched) and, with that venv's Python, asks the proxy:
#      reachable and its certificate valid? the stored credential still accepted, or else the
#      registration token accepted? (that check is the worker's real registration: a token
#      cannot be checked without using it; see preflight.py);
#   3. only then changes the system: the `hrw-agent` user, /etc/hrw-agent (config, CA bundle),
#      /var/lib/hrw-agent (0700: credential, spool; kept as it is on a re-run), the systemd
#      unit, and last the /opt/hrw-agent/current link to the release (the switch);
#   4. (re)starts the service where systemd runs (a restart drains the old agent with SIGTERM)
#      or prints how to start the agent, and keeps only the current and the previous release.
# A failure before the switch undoes everything this run did (files restored, new folders and
# a new user removed), so nothing is left half-installed. A re-run with the same artifact and
# flags changes nothing.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi  # `sh install.sh` works too
set -euo pipefail
umask 022

PROG=install.sh
BUNDLE=$(cd "$(dirname "$0")" && pwd)

usage() {
    cat <<'USAGE'
Usage: install.sh --proxy-url URL --ca-file FILE --group GROUP --namespace NS --token-file FILE [options]

Install (or upgrade, by running the newer artifact's install.sh) the hrw agent.

Required:
  --proxy-url URL      the hrw API proxy, https://...
  --ca-file FILE       PEM CA bundle that signed the proxy's certificate (copied to /etc/hrw-agent/ca.crt)
  --group GROUP        the WorkerGroup to join
  --namespace NS       the namespace of the group
  --token-file FILE    a registration token (`hrw get-token GROUP -n NS --ttl 1h`); used once, to
                       register; not needed when the worker already has its credential (re-run, upgrade)
Options:
  --worker NAME        this worker's name in the group (default: the short host name); kept in the config
  --root DIR           install into DIR instead of / (tests, packaging); DIR must exist; implies --no-systemd
  --no-systemd         do not use systemctl; print how to start the agent instead (default when
                       systemd is not running, e.g. in a container)
  --python PATH        the CPython to build the venv with (default: the newest supported one on PATH)
  -h, --help           this text
USAGE
}

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

usage_error() {
    echo "$PROG: error: $* (see --help)" >&2
    exit 2
}

last_line() {
    # The last non-empty line of a command's output: errors stay one line.
    printf '%s\n' "$1" | awk 'NF { line = $0 } END { print line }'
}

# ------------------------------------------------------------------------------------ flags

proxy_url="" ca_file="" group="" namespace="" token_file="" worker="" root="" python="" use_systemd=auto
while [ $# -gt 0 ]; do
    flag=$1
    case $flag in
        -h | --help) usage; exit 0 ;;
        --no-systemd) use_systemd=no; shift; continue ;;
        --*=*) value=${flag#*=}; flag=${flag%%=*}; shift ;;
        --*)
            [ $# -ge 2 ] || usage_error "$flag needs a value"
            value=$2; shift 2 ;;
        *) usage_error "unexpected argument '$flag'" ;;
    esac
    case $flag in
        --proxy-url) proxy_url=$value ;;
        --ca-file) ca_file=$value ;;
        --group) group=$value ;;
        --namespace) namespace=$value ;;
        --token-file) token_file=$value ;;
        --worker) worker=$value ;;
        --root) root=$value ;;
        --python) python=$value ;;
        *) usage_error "unknown flag $flag" ;;
    esac
done

missing=""
[ -n "$proxy_url" ] || missing="$missing --proxy-url"
[ -n "$ca_file" ] || missing="$missing --ca-file"
[ -n "$group" ] || missing="$missing --group"
[ -n "$namespace" ] || missing="$missing --namespace"
if [ -n "$root" ]; then
    [ -d "$root" ] || usage_error "--root $root is not a directory"
    root=$(cd "$root" && pwd)
    [ "$root" != / ] || root=""
    use_systemd=no
fi
STATE_DIR=/var/lib/hrw-agent
CONFIG_DIR=/etc/hrw-agent
OPT_DIR=/opt/hrw-agent
UNIT=/etc/systemd/system/hrw-agent.service
AGENT_USER=hrw-agent
JOB_USER=hrw-job  # the default Run As identity of jobs (WorkerGroup spec.runAs), never the agent's user
stored_credential=$root$STATE_DIR/credential
if [ -z "$token_file" ] && [ ! -s "$stored_credential" ]; then
    missing="$missing --token-file"
fi
[ -z "$missing" ] || usage_error "missing required flag(s):$missing"

dns_label='^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'
for pair in "group:$group" "namespace:$namespace" ${worker:+"worker:$worker"}; do
    [[ ${pair#*:} =~ $dns_label ]] || usage_error "--${pair%%:*} must be a DNS label (lowercase letters, digits, '-'), got '${pair#*:}'"
done
[[ $proxy_url =~ ^https://[^[:space:]\'\"]+$ ]] || usage_error "--proxy-url must be an https:// URL, got '$proxy_url'"
[ -r "$ca_file" ] && [ -f "$ca_file" ] || usage_error "--ca-file $ca_file is not a readable file"
if [ -n "$token_file" ]; then
    [ -r "$token_file" ] && [ -s "$token_file" ] || usage_error "--token-file $token_file is not a readable, non-empty file"
fi
if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
    die "run as root (it creates a system user and files under /etc, /opt and /var/lib)"
fi

# ----------------------------------------------------------------------- bundle and platform

[ -f "$BUNDLE/MANIFEST" ] || die "no MANIFEST next to install.sh: run the install.sh of an unpacked artifact"
manifest() { sed -n "s/^$1=//p" "$BUNDLE/MANIFEST"; }
VERSION=$(manifest VERSION)
RELEASE=$(manifest RELEASE)
WHEEL=$(manifest WHEEL)
PIP_WHEEL=$(manifest PIP_WHEEL)
PYTHONS=$(manifest PYTHONS)
PLATFORM=$(manifest PLATFORM)
sums=$(cd "$BUNDLE" && sha256sum --check --strict --quiet SHA256SUMS 2>&1) \
    || die "the unpacked artifact is damaged (SHA256SUMS): $(last_line "$sums")"
[ "linux-$(uname -m)" = "$PLATFORM" ] || die "this artifact is for $PLATFORM, this server is linux-$(uname -m)"

python_version() {
    "$1" -c 'import sys, venv; assert sys.implementation.name == "cpython"; print("%d.%d" % sys.version_info[:2])' \
        2>/dev/null
}
if [ -n "$python" ]; then
    found=$(python_version "$python") || die "--python $python is not a CPython with the venv module"
    [[ " $PYTHONS " == *" $found "* ]] || die "--python $python is CPython $found; this artifact has wheels for $PYTHONS"
else
    for candidate in $(for v in $PYTHONS; do echo "python$v"; done | sort -rV) python3; do
        path=$(command -v "$candidate" 2>/dev/null) || continue
        found=$(python_version "$path") || continue
        if [[ " $PYTHONS " == *" $found "* ]]; then python=$path; break; fi
    done
    [ -n "$python" ] || die "no CPython ${PYTHONS// /, } with the venv module on PATH (install one, or give --python)"
fi

# ------------------------------------------------------------------ undo on failure (until the switch)

stage=$(mktemp -d "${TMPDIR:-/tmp}/hrw-agent-install.XXXXXX")
chmod 0700 "$stage"
created=()      # paths this run created, removed in reverse order on failure
restores=()     # "backup|path" pairs, put back on failure
user_created=no
job_user_created=no
committed=no
changed=no

cleanup() {
    status=$?
    if [ "$status" != 0 ] && [ "$committed" = no ]; then
        local i entry
        for ((i = ${#restores[@]} - 1; i >= 0; i--)); do
            entry=${restores[i]}
            mv -f "${entry%%|*}" "${entry#*|}" 2>/dev/null || true
        done
        for ((i = ${#created[@]} - 1; i >= 0; i--)); do
            rm -rf -- "${created[i]}"
        done
        if [ "$user_created" = yes ]; then
            userdel ${root:+--root "$root"} "$AGENT_USER" >/dev/null 2>&1 || true
        fi
        if [ "$job_user_created" = yes ]; then
            userdel ${root:+--root "$root"} "$JOB_USER" >/dev/null 2>&1 || true
        fi
    fi
    rm -rf -- "$stage"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

make_dirs() {
    # mkdir -p that remembers each folder it created; mode and owner apply to the last one.
    local target=$1 mode=$2 owner=$3 path="" part
    local IFS=/
    for part in ${target#/}; do
        path="$path/$part"
        if [ ! -d "$path" ]; then
            mkdir -m 0755 "$path"
            created+=("$path")
        fi
    done
    chmod "$mode" "$target"
    [ "$(id -u)" != 0 ] || chown "$owner" "$target"
}

place_file() {
    # Put SOURCE at TARGET (mode, owner) atomically; a changed existing file is restored on failure.
    local source=$1 target=$2 mode=$3 owner=$4 current_mode
    if [ -f "$target" ] && cmp -s "$source" "$target"; then
        current_mode=$(stat -c %a "$target")
        [ "$current_mode" = "${mode#0}" ] || { chmod "$mode" "$target"; changed=yes; }
        return 0
    fi
    if [ -e "$target" ]; then
        local backup
        backup=$stage/backup.${#restores[@]}
        cp -p "$target" "$backup"
        restores+=("$backup|$target")
    else
        created+=("$target")
    fi
    cp "$source" "$target.new"
    chmod "$mode" "$target.new"
    [ "$(id -u)" != 0 ] || chown "$owner" "$target.new"
    mv -f "$target.new" "$target"
    changed=yes
}

quiet() {
    # Run a step; on failure, die with the step's name and the last line it printed.
    local what=$1 out
    shift
    out=$("$@" 2>&1) || die "$what failed: $(last_line "$out")"
}

# ----------------------------------------------------------------- 2. the release, then the proxy

releases=$root$OPT_DIR/releases
release_dir=$releases/$RELEASE
if [ -e "$release_dir" ] && [ ! -f "$release_dir/.complete" ]; then
    rm -rf -- "$release_dir"  # a run that was killed while building it
fi
if [ ! -f "$release_dir/.complete" ]; then
    make_dirs "$releases" 0755 root:root
    created+=("$release_dir")
    quiet "creating the venv with $python" "$python" -m venv --without-pip "$release_dir"
    # Never an index: --no-index, no config file (which could add an index or find-links), and
    # pip itself run from its bundled wheel, so the server needs neither ensurepip nor pip.
    quiet "installing the bundled wheels" env PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 \
        "$release_dir/bin/python" "$BUNDLE/wheels/$PIP_WHEEL/pip" install --no-index --find-links "$BUNDLE/wheels" \
        --no-cache-dir --disable-pip-version-check --no-warn-script-location --quiet "$BUNDLE/wheels/$WHEEL"
    quiet "checking the installed agent" "$release_dir/bin/hrw-agent" --version
    touch "$release_dir/.complete"
    changed=yes
fi

mkdir -m 0700 "$stage/state"
preflight_args=(--proxy-url "$proxy_url" --ca-file "$ca_file" --namespace "$namespace" --group "$group"
                --out "$stage/state/credential")
[ -z "$worker" ] || preflight_args+=(--worker "$worker")
[ -z "$token_file" ] || preflight_args+=(--token-file "$token_file")
[ ! -f "$stored_credential" ] || preflight_args+=(--credential "$stored_credential")
if ! answer=$("$release_dir/bin/python" "$BUNDLE/preflight.py" "${preflight_args[@]}" 2>"$stage/preflight.err"); then
    problem=$(last_line "$(cat "$stage/preflight.err")")
    die "${problem:-the check against the proxy failed without saying why}"
fi
read -r outcome worker <<<"$answer"

# -------------------------------------------------------------------- 3. change the system

if [ -n "$root" ]; then
    user_exists() { [ -f "$root/etc/passwd" ] && grep -q "^${1:-$AGENT_USER}:" "$root/etc/passwd"; }
else
    user_exists() { getent passwd "${1:-$AGENT_USER}" >/dev/null; }
fi
if ! user_exists; then
    if [ -z "$root" ] || [ -f "$root/etc/passwd" ]; then
        quiet "creating the system user $AGENT_USER" useradd ${root:+--root "$root"} --system --user-group \
            --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin "$AGENT_USER"
        user_created=yes
        changed=yes
    fi
fi
# Jobs run as this unprivileged user unless their WorkerGroup says otherwise (README, "Run As").
if ! user_exists "$JOB_USER" && { [ -z "$root" ] || [ -f "$root/etc/passwd" ]; }; then
    quiet "creating the job user $JOB_USER" useradd ${root:+--root "$root"} --system --user-group \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin "$JOB_USER"
    job_user_created=yes
    changed=yes
fi
if user_exists; then
    owner=$AGENT_USER
    if [ -n "$root" ]; then  # the root's own ids; chown by name would look them up on this host
        owner=$(awk -F: -v u="$AGENT_USER" '$1 == u { print $3 ":" $4 }' "$root/etc/passwd")
    fi
else
    owner=$(id -u):$(id -g)  # a --root without /etc/passwd: no user to create there
fi

make_dirs "$root$CONFIG_DIR" 0750 "root:${owner#*:}"
make_dirs "$root$STATE_DIR" 0700 "$owner"
make_dirs "$(dirname "$root$UNIT")" 0755 root:root

LOCAL_MARK="# --- local settings: install.sh keeps everything below this line; a key here wins ---"
cat >"$stage/agent.yaml" <<EOF
# Written by install.sh from its flags; running install.sh again rewrites the lines above the
# local settings mark. Every key is described in agent.example.yaml (in the artifact).
proxyUrl: '$proxy_url'
caFile: $CONFIG_DIR/ca.crt
namespace: $namespace
group: $group
worker: $worker
stateDir: $STATE_DIR
shutdownGraceSeconds: 60
logFormat: text
logLevel: info
$LOCAL_MARK
EOF
if [ -f "$root$CONFIG_DIR/agent.yaml" ]; then  # e.g. maxConcurrentJobs or interpreterPaths set by the admin
    awk -v mark="$LOCAL_MARK" 'seen { print } $0 == mark { seen = 1 }' "$root$CONFIG_DIR/agent.yaml" \
        >>"$stage/agent.yaml"
fi
place_file "$ca_file" "$root$CONFIG_DIR/ca.crt" 0644 root:root
place_file "$stage/agent.yaml" "$root$CONFIG_DIR/agent.yaml" 0640 "root:${owner#*:}"
place_file "$BUNDLE/hrw-agent.service" "$root$UNIT" 0644 root:root
if [ "$outcome" = registered ]; then
    place_file "$stage/state/credential" "$stored_credential" 0600 "$owner"
fi

# The switch: one rename makes the new release the one the unit runs.
current=$root$OPT_DIR/current
previous=$(readlink "$current" 2>/dev/null || true)
if [ "$previous" != "releases/$RELEASE" ]; then
    ln -sfn "releases/$RELEASE" "$current.new"
    mv -Tf "$current.new" "$current"
    changed=yes
fi
committed=yes

# --------------------------------------------------------------------- 4. run it, tidy up

if [ "$use_systemd" = auto ]; then
    if [ -d /run/systemd/system ]; then use_systemd=yes; else use_systemd=no; fi
fi
if [ "$use_systemd" = yes ]; then
    quiet "systemctl daemon-reload" systemctl daemon-reload
    quiet "systemctl enable hrw-agent" systemctl enable hrw-agent.service
    if [ "$changed" = yes ] || ! systemctl is-active --quiet hrw-agent.service; then
        # On an upgrade this stops the old agent first (SIGTERM: it stops claiming, lets running
        # jobs finish, delivers their results; TimeoutStopSec in the unit), then starts the new one.
        quiet "systemctl restart hrw-agent" systemctl restart hrw-agent.service
    fi
fi

# After a switch, keep the new release and the one before it (the old agent ran from it until
# the restart; switching the link back is the rollback); older ones go.
if [ "$previous" != "releases/$RELEASE" ]; then
    for dir in "$releases"/*; do
        name=releases/$(basename "$dir")
        [ "$name" = "releases/$RELEASE" ] || [ "$name" = "$previous" ] || rm -rf -- "$dir"
    done
fi

if [ "$changed" = no ]; then
    echo "hrw-agent $VERSION is already installed as given (release $RELEASE, worker $worker); nothing changed."
else
    echo "hrw-agent $VERSION installed (release $RELEASE, worker $worker of $namespace/$group)."
fi
if [ "$use_systemd" = yes ]; then
    echo "It runs as the systemd service hrw-agent: journalctl -u hrw-agent -f"
else
    echo "systemd is not used here; start the agent (stop it with SIGTERM: running jobs drain) with:"
    if [ -n "$root" ]; then
        echo "  $root$OPT_DIR/current/bin/hrw-agent --config $root$CONFIG_DIR/agent.yaml" \
            "--state-dir $root$STATE_DIR --ca-file $root$CONFIG_DIR/ca.crt"
    else
        echo "  $OPT_DIR/current/bin/hrw-agent --config $CONFIG_DIR/agent.yaml   # as root: it starts jobs as their users"
    fi
fi
