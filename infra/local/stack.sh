#!/usr/bin/env bash
# The local stack without Docker: Apache Kafka (KRaft, one combined broker+controller) from its jars on
# Maven Central, and FerretDB v1.24 (MongoDB wire protocol, SQLite backend) built with `go install`.
#
#   infra/local/stack.sh up       start what is not running; return once both answer real requests
#   infra/local/stack.sh down     stop exactly the processes this script started (pid files)
#   infra/local/stack.sh status   say what runs
#
# Downloads and builds go to $PORTFOLIO_CACHE_DIR (default ~/.cache/portfolio) once per machine;
# data, logs and pid files go to $PORTFOLIO_STACK_DIR (default <checkout>/.stack).
# Ports come from PORTFOLIO_KAFKA_BOOTSTRAP_SERVERS and PORTFOLIO_MONGODB_URI, as the services read them.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${PORTFOLIO_CACHE_DIR:-$HOME/.cache/portfolio}
state=${PORTFOLIO_STACK_DIR:-$repo/.stack}
python=${PORTFOLIO_PYTHON:-$repo/.venv/bin/python}

# Read .env the way pydantic-settings does, without overriding the real environment.
if [[ -f "$repo/.env" ]]; then
  while IFS='=' read -r key value; do
    [[ "$key" =~ ^PORTFOLIO_(KAFKA_BOOTSTRAP_SERVERS|MONGODB_URI)$ ]] || continue
    [[ -n "${!key:-}" ]] || export "$key=${value%\"}"
  done < <(grep -E '^[A-Z_]+=' "$repo/.env" | sed 's/="/=/')
fi
bootstrap=${PORTFOLIO_KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}
mongo_uri=${PORTFOLIO_MONGODB_URI:-mongodb://127.0.0.1:27017}

kafka_version=4.1.1
kafka_home=$cache/kafka-$kafka_version
ferretdb_version=v1.24.2
ferretdb_bin=$cache/ferretdb-$ferretdb_version/ferretdb

first_hostport() { local s=${1#*://}; s=${s#*@}; s=${s%%,*}; s=${s%%/*}; s=${s%%\?*}; echo "$s"; }
kafka_hostport=$(first_hostport "$bootstrap")
kafka_host=${kafka_hostport%:*}
kafka_port=${kafka_hostport##*:}
controller_port=$((kafka_port + 1))
mongo_hostport=$(first_hostport "$mongo_uri")
[[ "$mongo_hostport" == *:* ]] || mongo_hostport="$mongo_hostport:27017"
mongo_host=${mongo_hostport%:*}
mongo_port=${mongo_hostport##*:}

log() { printf 'stack: %s\n' "$*" >&2; }

fetch_kafka() {
  [[ -f "$kafka_home/.complete" ]] && return 0
  log "fetching Apache Kafka $kafka_version jars from Maven Central into $kafka_home (once per machine)"
  rm -rf "$kafka_home" && mkdir -p "$kafka_home/libs"
  mvn -q -B -f "$here/kafka-pom.xml" -Dkafka.version="$kafka_version" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$kafka_home/libs" >&2
  touch "$kafka_home/.complete"
}

fetch_ferretdb() {
  [[ -x "$ferretdb_bin" ]] && return 0
  log "building FerretDB $ferretdb_version into $(dirname "$ferretdb_bin") (once per machine, a few minutes)"
  # A plain `go install ...@v1.24.2` builds a binary that panics at start: the module leaves out
  # build/version/version.txt, which release builds generate. So fetch the same module from the Go
  # module proxy, add that one file, and build its cmd/ferretdb.
  local src build
  src=$(go mod download -json "github.com/FerretDB/FerretDB@$ferretdb_version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
  build=$(mktemp -d)
  cp -r "$src/." "$build" && chmod -R u+w "$build"
  echo "$ferretdb_version" >"$build/build/version/version.txt"
  mkdir -p "$(dirname "$ferretdb_bin")"
  (cd "$build" && go build -trimpath -o "$ferretdb_bin.tmp" ./cmd/ferretdb) >&2
  mv "$ferretdb_bin.tmp" "$ferretdb_bin"
  rm -rf "$build"
}

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

port_taken() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

start_kafka() {
  local dir=$state/kafka pid=$state/kafka.pid
  alive "$pid" && return 0
  if port_taken "$kafka_host" "$kafka_port"; then
    log "something already listens on $kafka_host:$kafka_port; using it as Kafka"
    return 0
  fi
  mkdir -p "$dir" "$state/logs"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$kafka_host:$controller_port
listeners=PLAINTEXT://$kafka_host:$kafka_port,CONTROLLER://$kafka_host:$controller_port
advertised.listeners=PLAINTEXT://$kafka_host:$kafka_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
auto.create.topics.enable=true
num.partitions=6
# One node: every internal topic has one replica, or the broker waits forever for the others.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests create many short-lived groups: start them at once.
group.initial.rebalance.delay.ms=0
log.retention.hours=168
EOF
  cat >"$dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $state/logs/kafka.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
EOF
  local java=(java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$dir/log4j2.properties" -cp "$kafka_home/libs/*")
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    log "formatting Kafka storage in $dir/data"
    "${java[@]}" kafka.tools.StorageTool format --ignore-formatted \
      -t "$("${java[@]}" kafka.tools.StorageTool random-uuid)" -c "$dir/server.properties" \
      >"$state/logs/kafka-format.log" 2>&1 || { cat "$state/logs/kafka-format.log" >&2; return 1; }
  fi
  log "starting Kafka on $kafka_host:$kafka_port"
  # Own session: a Ctrl-C meant for `make run` in the same terminal must not reach the broker.
  setsid nohup "${java[@]}" kafka.Kafka "$dir/server.properties" >"$state/logs/kafka.out" 2>&1 &
  echo $! >"$pid"
}

start_ferretdb() {
  local dir=$state/ferretdb pid=$state/ferretdb.pid
  alive "$pid" && return 0
  if port_taken "$mongo_host" "$mongo_port"; then
    log "something already listens on $mongo_host:$mongo_port; using it as the database"
    return 0
  fi
  mkdir -p "$dir/data" "$state/logs"
  log "starting FerretDB on $mongo_host:$mongo_port"
  # Own session: FerretDB (Go) handles SIGINT even when started in the background, so without it a
  # Ctrl-C of `make run` stopped the database before the sink could write what it held.
  setsid nohup "$ferretdb_bin" --handler=sqlite --sqlite-url="file:$dir/data/" --state-dir="$dir" \
    --listen-addr="$mongo_host:$mongo_port" --debug-addr=- --telemetry=disable \
    --log-level=warn >"$state/logs/ferretdb.log" 2>&1 &
  echo $! >"$pid"
}

wait_ready() {
  if ! "$python" "$here/wait_ready.py" --kafka "$bootstrap" --mongodb "$mongo_uri" --timeout "${1:-120}"; then
    for f in "$state"/logs/*; do
      [[ -f "$f" ]] && { log "---- $f (last 40 lines)"; tail -n 40 "$f" >&2; }
    done
    return 1
  fi
}

stop_one() {
  local name=$1 pid=$state/$1.pid
  if alive "$pid"; then
    local p; p=$(cat "$pid")
    log "stopping $name (pid $p)"
    kill "$p"
    for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$p" 2>/dev/null && { log "$name did not stop in 30 s; killing it"; kill -9 "$p"; }
  fi
  rm -f "$pid"
}

case "${1:-}" in
  up)
    [[ -x "$python" ]] || { log "no Python at $python: run 'make setup' first"; exit 1; }
    fetch_kafka
    fetch_ferretdb
    start_kafka
    start_ferretdb
    wait_ready "${STACK_TIMEOUT_S:-120}"
    ;;
  down)
    stop_one kafka
    stop_one ferretdb
    ;;
  status)
    for name in kafka ferretdb; do
      if alive "$state/$name.pid"; then echo "$name: running (pid $(cat "$state/$name.pid"))"; else echo "$name: stopped"; fi
    done
    ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
