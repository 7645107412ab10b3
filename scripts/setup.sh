#!/usr/bin/env bash
# Installs what rr's demo and tests need and a fresh machine may lack:
# php-cli, redis-server (the schedules' cluster tests start their own on a
# free loopback port), memcached, beanstalkd, rabbitmq-server and nats-server
# (the kv and jobs tests start their own the same way), chromium (the http plugin's browser test), and the
# font libraries the benchmark plots need
# (Debian packages).
# Safe to run again; does nothing when all is there.
set -euo pipefail

need_php() { ! command -v php >/dev/null 2>&1; }
need_redis() { ! command -v redis-server >/dev/null 2>&1; }
# The http plugin's browser test drives headless Chromium.
need_chromium() { [ ! -x /usr/bin/chromium ]; }
need_memcached() { ! command -v memcached >/dev/null 2>&1; }
need_beanstalkd() { ! command -v beanstalkd >/dev/null 2>&1; }
need_rabbitmq() { [ ! -x /usr/sbin/rabbitmq-server ]; }
need_nats() { ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; }

# The benchmark crate (built by clippy and tests too) draws its plots with
# fontconfig/freetype and the DejaVu fonts.
need_fonts() {
    ! pkg-config --exists fontconfig freetype2 2>/dev/null || [ ! -d /usr/share/fonts/truetype/dejavu ]
}

missing=()
need_php && missing+=(php-cli)
need_redis && missing+=(redis-server)
need_chromium && missing+=(chromium)
need_memcached && missing+=(memcached)
need_beanstalkd && missing+=(beanstalkd)
need_rabbitmq && missing+=(rabbitmq-server)
need_nats && missing+=(nats-server)
need_fonts && missing+=(pkg-config libfontconfig1-dev libfreetype-dev fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]} from Debian packages..." >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if need_php; then
    echo "setup: php is still missing after installing php-cli" >&2
    exit 1
fi
if need_redis; then
    echo "setup: redis-server is still missing after installing it" >&2
    exit 1
fi
for service in memcached beanstalkd rabbitmq nats; do
    if "need_$service"; then
        echo "setup: $service is still missing after installing it" >&2
        exit 1
    fi
done
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo (Rust) is required" >&2; exit 1; }
