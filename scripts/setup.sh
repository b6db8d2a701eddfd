# shellcheck shell=bash
# Sourced by scripts/start and scripts/test: installs what a fresh machine lacks and exports
# the environment the build needs. Idempotent, and quick when everything is already there.
#
# The WASM half needs a Rust toolchain that can build `wasm32-unknown-unknown`:
#   * if the active toolchain can (rustup with `rustup target add wasm32-unknown-unknown`),
#     it is used as is;
#   * otherwise (Debian machines without a wasm32 std, and no way to download one) the
#     WASM build alone goes through Debian's `rustc-web` 1.96, rebuilding std from source
#     with `-Zbuild-std`; the server is still built by the active toolchain.
# Tools and build output live outside the clone, under $CHAT_CACHE_DIR.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHAT_CACHE_DIR="${CHAT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rust-chat}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CHAT_CACHE_DIR/target}"
# cargo-leptos sets this while building; setting the same value for plain cargo commands keeps
# leptos's compile-time `option_env!` identical, so `cargo test` reuses cargo-leptos's builds.
export LEPTOS_OUTPUT_NAME=chat
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# `cargo install` puts the tools here; make sure they are found even if PATH lacks it.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# wasm-bindgen-cli is installed here (see `start_tools`); an older install in cargo's own
# directory is found after it.
export PATH="$CHAT_CACHE_DIR/tools/bin:$PATH"

CARGO_LEPTOS_VERSION=0.3.11
# Oldest rustc that can build cargo-leptos 0.3.11 from its lockfile.
CARGO_LEPTOS_MIN_RUSTC=1.96
# wasm-bindgen-cli must equal the `=`-pinned wasm-bindgen in Cargo.toml.
WASM_BINDGEN_VERSION="$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)"/\1/p' "$ROOT/Cargo.toml")"
BINARYEN_VERSION=132.0.0
# rust-web-llvm provides `rust-lld` (a link to lld-22), the wasm32 linker.
DEBIAN_WASM_PACKAGES=(rustc-web cargo-web rust-web-src rust-web-clippy rust-web-llvm lld-22)

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# Runs a command as root: directly, or through passwordless sudo; otherwise explains.
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif have sudo && sudo -n true 2>/dev/null; then
        sudo "$@"
    else
        return 1
    fi
}

apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} = 0 ] && return 0
    have apt-get || die "missing packages ${missing[*]}, and this is not a Debian-like system: install their equivalents"
    say "installing Debian packages: ${missing[*]}"
    # RUNLEVEL=1: a package that ships a service (nginx) is installed, not started; the
    # scripts start what they use themselves, on loopback ports of their choosing.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "could not install ${missing[*]} (needs root or passwordless sudo). Run: sudo apt-get install ${missing[*]}"
}

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
rustc_version() { "$1" --version 2>/dev/null | awk '{print $2}'; }

# True when `$1` (a rustc) has a wasm32-unknown-unknown standard library.
rustc_builds_wasm() {
    local tmp
    tmp="$(mktemp -d)"
    echo 'pub fn f() -> u32 { 1 }' > "$tmp/probe.rs"
    "$1" --target wasm32-unknown-unknown --crate-type lib --emit metadata -o "$tmp/probe.rmeta" "$tmp/probe.rs" >/dev/null 2>&1
    local ok=$?
    rm -rf "$tmp"
    return $ok
}

# Free space (in GiB) on the filesystem that holds the build output.
free_gib() {
    mkdir -p "$CARGO_TARGET_DIR"
    df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 { print int($4 / 1048576) }'
}

# Build output only grows (cargo never deletes old artifacts), and a full disk fails a build
# or an `npm ci` in ways that say nothing about the cause. Below a few GiB free, the
# incremental-compilation caches (the largest part, and rebuilt on demand) are removed;
# if that is not enough, the run stops with the reason instead of failing somewhere later.
ensure_disk_room() {
    local want=8 need=3 free
    free="$(free_gib)"
    [ "$free" -ge "$want" ] && return 0
    say "only ${free} GiB free: removing incremental build caches under $CARGO_TARGET_DIR"
    find "$CARGO_TARGET_DIR" -maxdepth 4 -type d -name incremental -prune -exec rm -rf {} +
    free="$(free_gib)"
    [ "$free" -ge "$need" ] || die "only ${free} GiB free on the disk holding $CARGO_TARGET_DIR; a build needs about ${need} GiB (delete that directory to start clean)"
}

setup_rust() {
    ensure_disk_room
    have cargo && have rustc || die "Rust is not installed: get it from https://rustup.rs (or your distribution) and re-run"
    # The cargo that builds the server (and that users have on PATH), captured before any
    # PATH change below.
    HOST_CARGO="$(command -v cargo)"
    if rustc_builds_wasm rustc; then
        WASM_ROUTE=native
        LIB_CARGO_ARGS=()
        WASM_CARGO="$HOST_CARGO"
    else
        WASM_ROUTE=debian
        say "the active Rust toolchain has no wasm32 std; using Debian's rustc-web for the WASM build"
        apt_install "${DEBIAN_WASM_PACKAGES[@]}"
        rustc_builds_wasm /usr/bin/rustc && die "unexpected: Debian's rustc has a prebuilt wasm32 std"
        # A `cargo` that runs Debian's toolchain with std built from source. cargo-leptos runs
        # `cargo` from PATH for the WASM build; the server build uses HOST_CARGO instead
        # (LEPTOS_BIN_CARGO_COMMAND), so only the WASM goes through this route.
        local dir="$CHAT_CACHE_DIR/wasm-toolchain/bin"
        mkdir -p "$dir"
        cat > "$dir/cargo.new" <<'WRAPPER'
#!/bin/sh
# Debian's rustc-web toolchain; -Zbuild-std needs RUSTC_BOOTSTRAP in cargo's own environment.
export RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc PATH="/usr/bin:$PATH"
unset RUSTUP_TOOLCHAIN
exec /usr/bin/cargo "$@"
WRAPPER
        chmod +x "$dir/cargo.new"
        mv "$dir/cargo.new" "$dir/cargo"
        WASM_CARGO="$dir/cargo"
        LIB_CARGO_ARGS=(--lib-cargo-args=-Zbuild-std=std,panic_abort)
    fi
}

# Picks a cargo new enough to build cargo-leptos from its lockfile.
tool_cargo() {
    if version_ge "$(rustc_version rustc)" "$CARGO_LEPTOS_MIN_RUSTC"; then
        echo "$HOST_CARGO"
    elif [ -x /usr/bin/rustc ] && version_ge "$(rustc_version /usr/bin/rustc)" "$CARGO_LEPTOS_MIN_RUSTC"; then
        echo "$WASM_CARGO"
    else
        die "cargo-leptos $CARGO_LEPTOS_VERSION needs Rust >= $CARGO_LEPTOS_MIN_RUSTC; run 'rustup update'"
    fi
}

# `cargo install` at optimisation level $1 without LTO, in a target directory of its own
# (so that tools build beside the project's own builds, not after them): LTO and a single
# codegen unit would triple the install time on two cores for tools whose speed does not
# matter.
quick_install() {
    local level="$1" name="$2"
    shift
    CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        CARGO_PROFILE_RELEASE_OPT_LEVEL="$level" CARGO_TARGET_DIR="$CHAT_CACHE_DIR/tool-target/$name" \
        "$(tool_cargo)" install --quiet "$@"
}

# Builds started by `start_tools` in the background, by name: their pids, logs and the files
# their exit statuses go to.
declare -A TOOL_PID=() TOOL_LOG=() TOOL_STATUS=()

# Runs "$@" (a command or a function of this file) in the background at the lowest CPU
# priority, as the build named $1; `wait_tool $1` waits for it.
build_in_background() {
    local name="$1"
    shift
    mkdir -p "$CHAT_CACHE_DIR/logs"
    TOOL_LOG[$name]="$CHAT_CACHE_DIR/logs/$name.log"
    TOOL_STATUS[$name]="$CHAT_CACHE_DIR/logs/$name.status"
    rm -f "${TOOL_STATUS[$name]}"
    (
        renice -n 19 -p "$BASHPID" >/dev/null
        status=0
        "$@" || status=$?
        echo "$status" >"${TOOL_STATUS[$name]}"
    ) >"${TOOL_LOG[$name]}" 2>&1 &
    TOOL_PID[$name]=$!
}

# Waits for the background build named $1, if one was started; shows its log if it failed.
# It waits for the build's status file, not with `wait`: a test run starts threads and
# processes by the tens of thousands, the kernel hands the pids out again, and bash forgets
# a finished child's status once a later child of its own gets the same pid ("not a child
# of this shell"), or waits for that other child instead.
wait_tool() {
    local pid="${TOOL_PID[$1]:-}" file="${TOOL_STATUS[$1]:-}" status
    [ -n "$pid" ] || return 0
    while [ ! -f "$file" ]; do
        # Gone without a status (killed): one more look, then give up.
        if ! kill -0 "$pid" 2>/dev/null; then
            sleep 1
            [ -f "$file" ] || break
        fi
        sleep 1
    done
    status="$(cat "$file" 2>/dev/null || echo "none: the build was killed")"
    if [ "$status" != 0 ]; then
        tail -n 60 "${TOOL_LOG[$1]}" >&2
        die "building $1 failed (exit status $status; log: ${TOOL_LOG[$1]})"
    fi
    TOOL_PID[$1]=
}

# Starts building, in the background, the tools missing or out of date: cargo-leptos,
# wasm-bindgen-cli and, with `surreal` as $1, SurrealDB's server. On a fresh machine these
# are ~45 min of compiling that the caller's own builds and tests overlap (at a lower
# priority: they take the CPU the caller leaves); `wait_tool cargo-leptos`, `wait_tool
# wasm-bindgen` and `wait_tool surreal` before using each.
start_tools() {
    if [ "$(cargo-leptos --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LEPTOS_VERSION" ]; then
        say "building cargo-leptos $CARGO_LEPTOS_VERSION in the background (one-off, ~30 min on 2 cores)"
        # Unoptimised: it runs cargo, wasm-bindgen and wasm-opt, and does little itself.
        build_in_background cargo-leptos \
            quick_install 0 cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
    fi
    if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
        say "building wasm-bindgen-cli $WASM_BINDGEN_VERSION in the background (one-off, ~7 min)"
        # Its own install root: two installs into one root at once would share its records.
        # Not --locked: its lockfile names a crate version crates.io no longer serves.
        build_in_background wasm-bindgen quick_install 1 wasm-bindgen-cli \
            --version "$WASM_BINDGEN_VERSION" --force --root "$CHAT_CACHE_DIR/tools"
    fi
    SURREAL_BIN="$CHAT_CACHE_DIR/surreal-target/debug/surreal"
    export SURREAL_BIN
    if [ "${1:-}" = surreal ]; then
        [ -x "$SURREAL_BIN" ] ||
            say "building SurrealDB's server from tools/surreal in the background (one-off, ~7 min on 2 cores)"
        build_in_background surreal build_surreal
    fi
}

# cargo-leptos and wasm-bindgen-cli, built now if missing.
setup_tools() {
    start_tools
    wait_tool cargo-leptos
    wait_tool wasm-bindgen
}

# SurrealDB's server (`surreal`), for the tests of remote storage: built from the
# `surrealdb-server` crate at our SDK's version (tools/surreal), in a target directory of its
# own (its dependencies' features differ from the server's). A debug build: the tests need
# it to be right, not fast, and it builds in a fraction of a release build's time.
build_surreal() {
    CARGO_TARGET_DIR="$CHAT_CACHE_DIR/surreal-target" "$HOST_CARGO" build --quiet --locked \
        --manifest-path "$ROOT/tools/surreal/Cargo.toml"
}

# SurrealDB's server, built now if missing; exports SURREAL_BIN.
setup_surreal() {
    SURREAL_BIN="$CHAT_CACHE_DIR/surreal-target/debug/surreal"
    [ -x "$SURREAL_BIN" ] || say "building SurrealDB's server from tools/surreal (one-off, ~7 min on 2 cores)"
    build_surreal
    export SURREAL_BIN
}

# Starts `surreal start` on a free loopback port with its data in a fresh directory, as root
# user `root` with a random password; exports CHAT_DB_URL, CHAT_DB_USER and CHAT_DB_PASSWORD
# for the chat servers started after it, and SURREAL_PID. `stop_surreal` ends it.
start_surreal() {
    SURREAL_DIR="$(mktemp -d)"
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    CHAT_DB_USER=root
    CHAT_DB_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
    CHAT_DB_URL="ws://127.0.0.1:$port"
    SURREAL_USER="$CHAT_DB_USER" SURREAL_PASS="$CHAT_DB_PASSWORD" \
        SURREAL_LOG=warn "$SURREAL_BIN" start --no-banner --bind "127.0.0.1:$port" \
        "surrealkv://$SURREAL_DIR/db" >"$SURREAL_DIR/surreal.log" 2>&1 &
    SURREAL_PID=$!
    local tries=0
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -gt 600 ] || ! kill -0 "$SURREAL_PID" 2>/dev/null; then
            cat "$SURREAL_DIR/surreal.log" >&2
            die "SurrealDB's server did not start on 127.0.0.1:$port"
        fi
        sleep 0.1
    done
    export CHAT_DB_URL CHAT_DB_USER CHAT_DB_PASSWORD SURREAL_PID
}

stop_surreal() {
    if [ -n "${SURREAL_PID:-}" ]; then
        kill "$SURREAL_PID" 2>/dev/null || true
        wait "$SURREAL_PID" 2>/dev/null || true
        SURREAL_PID=
    fi
    rm -rf "${SURREAL_DIR:-}"
    unset CHAT_DB_URL CHAT_DB_USER CHAT_DB_PASSWORD
}

# NATS (the bus between the nodes of a cluster) and nginx (the balancer in front of them),
# from Debian's packages.
setup_cluster_tools() {
    apt_install nats-server nginx-light
    NATS_BIN="$(command -v nats-server || echo /usr/sbin/nats-server)"
    NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"
    export NATS_BIN NGINX_BIN
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until something listens on 127.0.0.1:$1, or dies naming $2 and showing log $3.
wait_port() {
    local tries=0
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -gt 600 ]; then
            cat "$3" >&2 || true
            die "$2 did not listen on 127.0.0.1:$1"
        fi
        sleep 0.1
    done
}

# A local cluster in directory $1 (kept: logs, data, pids): SurrealDB's server, NATS, $2
# chat nodes running server binary $3 with site root $4, and nginx on 127.0.0.1:$5 in
# front. Writes $1/env (the addresses and pids, for tests that kill a node) and exports
# CLUSTER_PIDS. `start_cluster_node` starts a node again; `stop_cluster` ends it all.
start_cluster() {
    CLUSTER_DIR="$1" CLUSTER_BIN="$3" CLUSTER_SITE="$4"
    local dir="$1" count="$2" port="$5"
    mkdir -p "$dir/files" "$dir/nginx"
    start_surreal
    CLUSTER_NATS_PORT="$(free_port)"
    "$NATS_BIN" -a 127.0.0.1 -p "$CLUSTER_NATS_PORT" >"$dir/nats.log" 2>&1 &
    CLUSTER_PIDS="$!"
    echo "NATS_PID=$!" >"$dir/env"
    wait_port "$CLUSTER_NATS_PORT" nats-server "$dir/nats.log"
    CLUSTER_SECRET="$(head -c 32 /dev/urandom | base64 | tr -d '/+=')"
    CLUSTER_METRICS_TOKEN="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    echo "METRICS_TOKEN=$CLUSTER_METRICS_TOKEN" >>"$dir/env"
    local servers="" i node_port
    for i in $(seq 0 $((count - 1))); do
        node_port="$(free_port)"
        echo "NODE${i}_ADDR=127.0.0.1:$node_port" >>"$dir/env"
        start_cluster_node "$i"
        servers="$servers        server 127.0.0.1:$node_port max_fails=1 fail_timeout=2s;\n"
    done
    for i in $(seq 0 $((count - 1))); do
        node_port="$(sed -n "s/^NODE${i}_ADDR=127.0.0.1://p" "$dir/env")"
        wait_port "$node_port" "chat node n$i" "$dir/node$i.log"
    done
    sed -e "s|@DIR@|$dir/nginx|g" -e "s|@LISTEN@|127.0.0.1:$port|" \
        -e "s|@SERVERS@|$servers|" "$ROOT/deploy/nginx.conf" >"$dir/nginx/nginx.conf"
    "$NGINX_BIN" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" \
        >"$dir/nginx/nginx.log" 2>&1 &
    CLUSTER_PIDS="$CLUSTER_PIDS $!"
    echo "NGINX_PID=$!" >>"$dir/env"
    echo "CLUSTER_ADDR=127.0.0.1:$port" >>"$dir/env"
    wait_port "$port" nginx "$dir/nginx/error.log"
    export CLUSTER_PIDS
}

# Starts chat node $1 of the cluster `start_cluster` made, in the background: at first, or
# again after it stopped (the same address, data directory and settings, its log appended
# to); its pid goes to CLUSTER_PIDS and the env file.
start_cluster_node() {
    local i="$1" dir="$CLUSTER_DIR" addr
    addr="$(sed -n "s/^NODE${i}_ADDR=//p" "$dir/env")"
    mkdir -p "$dir/node$i"
    # Uploaded files live in one directory every node reads and writes.
    ln -sfn "$dir/files" "$dir/node$i/files"
    CHAT_ADDR="$addr" CHAT_DATA_DIR="$dir/node$i" CHAT_NODE="n$i" \
        CHAT_NATS_URL="nats://127.0.0.1:$CLUSTER_NATS_PORT" CHAT_JWT_SECRET="$CLUSTER_SECRET" \
        CHAT_METRICS_TOKEN="$CLUSTER_METRICS_TOKEN" \
        LEPTOS_SITE_ROOT="$CLUSTER_SITE" LEPTOS_OUTPUT_NAME=chat \
        "$CLUSTER_BIN" >>"$dir/node$i.log" 2>&1 &
    CLUSTER_PIDS="$CLUSTER_PIDS $!"
    sed -i "/^NODE${i}_PID=/d" "$dir/env"
    echo "NODE${i}_PID=$!" >>"$dir/env"
}

stop_cluster() {
    local pid
    for pid in ${CLUSTER_PIDS:-}; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in ${CLUSTER_PIDS:-}; do
        wait "$pid" 2>/dev/null || true
    done
    CLUSTER_PIDS=
    stop_surreal
}

setup_node() {
    if ! have npm || ! have node; then
        apt_install nodejs npm
    fi
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    [ "$major" -ge 18 ] || die "Node.js >= 18 is needed for Playwright (found $(node --version))"
}

# wasm-opt for release builds: npm's binaryen, never Debian's binaryen 108, which breaks
# wasm-bindgen's externref table so that hydration silently fails.
setup_wasm_opt() {
    local dir="$CHAT_CACHE_DIR/binaryen"
    if [ "$("$dir/node_modules/.bin/wasm-opt" --version 2>/dev/null | awk '{print $3}')" != "${BINARYEN_VERSION%%.*}" ]; then
        say "installing wasm-opt (npm binaryen@$BINARYEN_VERSION)"
        mkdir -p "$dir"
        npm install --silent --no-audit --no-fund --prefix "$dir" "binaryen@$BINARYEN_VERSION" >/dev/null
    fi
    export PATH="$dir/node_modules/.bin:$PATH"
}

setup_browser() {
    if [ -z "${CHROMIUM_PATH:-}" ]; then
        for c in chromium chromium-browser google-chrome-stable google-chrome; do
            if have "$c"; then CHROMIUM_PATH="$(command -v "$c")"; break; fi
        done
    fi
    if [ -z "${CHROMIUM_PATH:-}" ]; then
        apt_install chromium
        CHROMIUM_PATH=/usr/bin/chromium
    fi
    export CHROMIUM_PATH
    # A colour emoji font and a CJK one, so that reactions and Chinese text in screenshots
    # are emoji and characters, not empty boxes.
    apt_install fonts-noto-color-emoji fonts-noto-cjk
    local stamp="$ROOT/end2end/node_modules/.package-lock.json"
    if [ ! -f "$stamp" ] || [ "$ROOT/end2end/package-lock.json" -nt "$stamp" ]; then
        say "installing the end-to-end test's npm packages"
        (cd "$ROOT/end2end" && npm ci --silent --no-audit --no-fund)
    fi
}

# Runs cargo-leptos with the WASM route chosen above. It is started directly (not through
# `cargo leptos`) so that its own environment stays clean: it finds the WASM route's `cargo`
# first on PATH for the front end, and builds the server with HOST_CARGO.
# Every build splits the front end: the signed-in view is a WASM module of its own, fetched
# after the main one (`app`'s `split` feature; see app/src/pages/home.rs).
cargo_leptos() {
    local cmd="$1"
    shift
    PATH="$(dirname "$WASM_CARGO"):$PATH" LEPTOS_BIN_CARGO_COMMAND="$HOST_CARGO" \
        cargo-leptos "$cmd" "${LIB_CARGO_ARGS[@]}" --split --lib-features split "$@"
}

# The WASM modules of the built front end in directory $1 (its pkg/): the main one, `chat`,
# and those the split manifest names (older builds' modules may still lie beside them).
wasm_modules() {
    echo chat
    node -e '
      const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      for (const name of new Set(Object.values(m).flat())) console.log(name);
    ' "$1/__wasm_split_manifest.json"
}

# Runs clippy on the WASM build of the front end, with the WASM route's toolchain.
clippy_wasm() {
    local args=(clippy --package frontend --package app --features app/split
        --target wasm32-unknown-unknown --target-dir "$CARGO_TARGET_DIR/front")
    if [ "$WASM_ROUTE" = debian ]; then
        args+=(-Zbuild-std=std,panic_abort)
    fi
    "$WASM_CARGO" "${args[@]}" "$@"
}
