#!/usr/bin/env bash
# Calibration corpus for stateguard: renders popular public Helm charts in
# several variants (defaults, persistence off, HA/replicated, ...) and judges
# every render with `stateguard check`, then prints a table
# chart | variant | StatefulSets | Deployments | deny | warn | status.
#
# It assumes the chart repositories are already mirrored as bare git
# directories (for example by the `fetch` tool: /work/.mirror/OWNER+NAME/repo);
# no network is used: dependencies are copied by hand from the mirrors, and a
# dependency that cannot be had (and is disabled by the variant) is dropped
# from the copied Chart.yaml.
#
# Usage: hack/calibrate/render.sh [FILTER]   (FILTER: a regexp on "chart--variant")
# Outputs: $OUT/<chart>--<variant>.yaml (render), .err (helm stderr),
#          $JUDGED/<chart>--<variant>.json (stateguard check -o json), .stderr,
#          $CALIB/table.tsv ($CALIB/table-partial.tsv with a FILTER), $CALIB/inventory*.tsv,
#          $CALIB/results.txt
set -u

MIRRORS=${MIRRORS:-/work/.mirror}
CALIB=${CALIB:-/tmp/calib}
WORK=${WORK:-$CALIB/charts}
OUT=${OUT:-$CALIB/renders}
JUDGED=${JUDGED:-$CALIB/judged}
HELM=${HELM:-/work/main/bin/tools/k8s-1.36.3-etcd-3.6.8-helm-4.3.1/helm}
SG=${SG:-$CALIB/stateguard}
NS=${NS:-calib}
FILTER=${1:-.}
VALUES=${VALUES:-$(cd "$(dirname "$0")" && pwd)/values}

# Mirrors (bare git dirs) used below.
M_BITNAMI=$MIRRORS/bitnami+charts/repo
M_JENKINS=$MIRRORS/jenkinsci+helm-charts/repo
M_GRAFANA=$MIRRORS/grafana+helm-charts/repo
M_GRAFANA_COMMUNITY=$MIRRORS/grafana-community+helm-charts/repo
M_VAULT=$MIRRORS/hashicorp+vault-helm/repo
M_CONSUL=$MIRRORS/hashicorp+consul-k8s/repo
M_ARGO=$MIRRORS/argoproj+argo-helm/repo
M_REDISHA=$MIRRORS/DandyDeveloper+charts/repo
M_HARBOR=$MIRRORS/goharbor+harbor-helm/repo
M_PROM=$MIRRORS/prometheus-community+helm-charts/repo
M_SONAR=$MIRRORS/SonarSource+helm-chart-sonarqube/repo
M_NEXUS=$MIRRORS/stevehipwell+helm-charts/repo
M_NXRM=$MIRRORS/sonatype+nxrm3-ha-repository/repo
M_JFROG=$MIRRORS/jfrog+charts/repo
M_INFLUX=$MIRRORS/influxdata+helm-charts/repo
M_NATS=$MIRRORS/nats-io+k8s/repo
M_TRIVY=$MIRRORS/aquasecurity+trivy-operator/repo
M_NEO4J=$MIRRORS/neo4j+helm-charts/repo
M_TEMPORAL=$MIRRORS/temporalio+helm-charts/repo
M_AIRFLOW=$MIRRORS/airflow-helm+charts/repo
M_OPENSEARCH=$MIRRORS/opensearch-project+helm-charts/repo
M_ELASTIC=$MIRRORS/elastic+helm-charts/repo

SRC=$WORK/src2
BUILD=$WORK/build
mkdir -p "$SRC" "$BUILD" "$OUT" "$JUDGED"

# extract MIRROR PATH: the directory PATH of MIRROR's HEAD, once, into $SRC.
extract() {
  local m=$1 p=$2 d
  d=$SRC/$(basename "$(dirname "$m")")
  if [ ! -e "$d/$p/Chart.yaml" ]; then
    mkdir -p "$d"
    # (some mirrors lack a large unrelated blob: git complains, the path still arrives)
    git --git-dir="$m" archive HEAD "$p" 2>/dev/null | tar -x -C "$d" 2>/dev/null
    [ -e "$d/$p/Chart.yaml" ] || echo "extract: no chart at $m:$p" >&2
  fi
  echo "$d/$p"
}

# drop_deps CHARTDIR NAME...: remove dependencies from a copied Chart.yaml
# (only for dependencies the variants keep disabled).
drop_deps() {
  local dir=$1; shift
  python3 - "$dir/Chart.yaml" "$@" <<'EOF'
import sys, yaml
f, drop = sys.argv[1], set(sys.argv[2:])
c = yaml.safe_load(open(f))
c['dependencies'] = [d for d in c.get('dependencies') or [] if d['name'] not in drop]
if not c['dependencies']:
    del c['dependencies']
yaml.safe_dump(c, open(f, 'w'), sort_keys=False)
EOF
}

# deps_of CHARTDIR: "name repository alias" per dependency.
deps_of() {
  python3 - "$1/Chart.yaml" <<'EOF'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
for d in c.get('dependencies') or []:
    print(d['name'], d.get('repository', '-'), d.get('alias', d['name']))
EOF
}

# bitnami NAME: a buildable copy of bitnami/NAME with its bitnami
# dependencies (common, postgresql, redis, ...) copied in, recursively.
bitnami() {
  local name=$1 dst=$BUILD/bitnami-$1 src n r a
  if [ ! -e "$dst/.ready" ]; then
    src=$(extract "$M_BITNAMI" "bitnami/$name")
    rm -rf "$dst"; cp -r "$src" "$dst"; rm -f "$dst/Chart.lock"
    mkdir -p "$dst/charts"
    while read -r n r a; do
      case $r in
        *bitnamicharts*) bitnami "$n" >/dev/null; rm -rf "$dst/charts/$n"; cp -r "$BUILD/bitnami-$n" "$dst/charts/$n"; rm -f "$dst/charts/$n/.ready" ;;
        *) echo "bitnami $name: unknown dependency $n from $r" >&2 ;;
      esac
    done < <(deps_of "$dst")
    touch "$dst/.ready"
  fi
  echo "$dst"
}

# other KEY MIRROR PATH [drop:DEP ...] [dep:NAME=DIR ...]: a buildable copy.
other() {
  local key=$1 m=$2 p=$3 dst=$BUILD/$1 src arg drops=()
  shift 3
  if [ ! -e "$dst/.ready" ]; then
    src=$(extract "$m" "$p")
    rm -rf "$dst"; cp -r "$src" "$dst"; rm -f "$dst/Chart.lock" "$dst/requirements.lock"
    mkdir -p "$dst/charts"
    for arg in "$@"; do
      case $arg in
        drop:*) drops+=("${arg#drop:}") ;;
        dep:*) arg=${arg#dep:}; rm -rf "$dst/charts/${arg%%=*}"; cp -r "${arg#*=}" "$dst/charts/${arg%%=*}"; rm -f "$dst/charts/${arg%%=*}/.ready" ;;
      esac
    done
    [ ${#drops[@]} -gt 0 ] && drop_deps "$dst" "${drops[@]}"
    touch "$dst/.ready"
  fi
  echo "$dst"
}

# Chart directories.
declare -A DIR
prepare() {
  local c
  for c in postgresql postgresql-ha mysql mariadb mongodb redis valkey rabbitmq kafka zookeeper \
           elasticsearch opensearch etcd cassandra minio keycloak wordpress memcached clickhouse \
           influxdb nats superset airflow sonarqube gitlab-runner mariadb-galera redis-cluster solr \
           neo4j grafana jenkins harbor thanos; do
    DIR[bitnami-$c]=$(bitnami "$c")
  done
  # elasticsearch's kibana subchart is optional (global.kibanaEnabled=false by default)
  DIR[jenkins]=$(other jenkins "$M_JENKINS" charts/jenkins)
  DIR[grafana]=$(other grafana "$M_GRAFANA_COMMUNITY" charts/grafana)
  DIR[loki]=$(other loki "$M_GRAFANA_COMMUNITY" charts/loki drop:minio drop:rollout-operator)
  DIR[tempo]=$(other tempo "$M_GRAFANA_COMMUNITY" charts/tempo)
  DIR[tempo-distributed]=$(other tempo-distributed "$M_GRAFANA_COMMUNITY" charts/tempo-distributed drop:grafana-agent-operator drop:rollout-operator)
  DIR[vault]=$(other vault "$M_VAULT" .)
  DIR[consul]=$(other consul "$M_CONSUL" charts/consul)
  DIR[argo-cd]=$(other argo-cd "$M_ARGO" charts/argo-cd "dep:redis-ha=$(extract "$M_REDISHA" charts/redis-ha)")
  DIR[harbor]=$(other harbor "$M_HARBOR" .)
  DIR[prometheus]=$(other prometheus "$M_PROM" charts/prometheus \
    "dep:alertmanager=$(extract "$M_PROM" charts/alertmanager)" \
    "dep:kube-state-metrics=$(extract "$M_PROM" charts/kube-state-metrics)" \
    "dep:prometheus-node-exporter=$(extract "$M_PROM" charts/prometheus-node-exporter)" \
    "dep:prometheus-pushgateway=$(extract "$M_PROM" charts/prometheus-pushgateway)")
  DIR[sonarqube]=$(other sonarqube "$M_SONAR" charts/sonarqube)
  DIR[nexus3]=$(other nexus3 "$M_NEXUS" charts/nexus3)
  DIR[nxrm-ha]=$(other nxrm-ha "$M_NXRM" nxrm-ha)
  DIR[artifactory-oss]=$(other artifactory-oss "$M_JFROG" stable/artifactory-oss \
    "dep:artifactory=$(other artifactory "$M_JFROG" stable/artifactory drop:postgresql)")
  DIR[influxdb2]=$(other influxdb2 "$M_INFLUX" charts/influxdb2)
  DIR[nats]=$(other nats "$M_NATS" helm/charts/nats)
  DIR[trivy-operator]=$(other trivy-operator "$M_TRIVY" deploy/helm)
  DIR[neo4j]=$(other neo4j "$M_NEO4J" neo4j)
  DIR[temporal]=$(other temporal "$M_TEMPORAL" charts/temporal)
  DIR[airflow]=$(other airflow "$M_AIRFLOW" charts/airflow drop:postgresql drop:redis)
  DIR[opensearch]=$(other opensearch "$M_OPENSEARCH" charts/opensearch)
  DIR[elasticsearch]=$(other elasticsearch "$M_ELASTIC" elasticsearch)
}

# The variants: chart-key | variant | release name | helm args
VARIANTS=$(cat <<'EOF'
bitnami-postgresql|defaults|postgresql|
bitnami-postgresql|nopersist|postgresql|--set primary.persistence.enabled=false
bitnami-postgresql|replication|postgresql|--set architecture=replication
bitnami-postgresql|replication-nopersist|postgresql|--set architecture=replication --set primary.persistence.enabled=false --set readReplicas.persistence.enabled=false
bitnami-postgresql|existingclaim|postgresql|--set architecture=replication --set primary.persistence.existingClaim=pg-data --set readReplicas.replicaCount=3 --set readReplicas.persistence.existingClaim=pg-replica-data
bitnami-postgresql-ha|defaults|postgresql-ha|
bitnami-postgresql-ha|nopersist|postgresql-ha|--set persistence.enabled=false
bitnami-mysql|defaults|mysql|
bitnami-mysql|nopersist|mysql|--set primary.persistence.enabled=false
bitnami-mysql|replication|mysql|--set architecture=replication
bitnami-mysql|replication-nopersist|mysql|--set architecture=replication --set primary.persistence.enabled=false --set secondary.persistence.enabled=false
bitnami-mariadb|defaults|mariadb|
bitnami-mariadb|nopersist|mariadb|--set primary.persistence.enabled=false
bitnami-mariadb|replication|mariadb|--set architecture=replication
bitnami-mariadb|replication-nopersist|mariadb|--set architecture=replication --set primary.persistence.enabled=false --set secondary.persistence.enabled=false
bitnami-mariadb-galera|defaults|mariadb-galera|
bitnami-mariadb-galera|nopersist|mariadb-galera|--set persistence.enabled=false
bitnami-mongodb|defaults|mongodb|
bitnami-mongodb|nopersist|mongodb|--set persistence.enabled=false
bitnami-mongodb|replicaset|mongodb|--set architecture=replicaset
bitnami-mongodb|replicaset-nopersist|mongodb|--set architecture=replicaset --set persistence.enabled=false
bitnami-redis|defaults|redis|
bitnami-redis|nopersist|redis|--set master.persistence.enabled=false --set replica.persistence.enabled=false
bitnami-redis|standalone|redis|--set architecture=standalone
bitnami-redis|standalone-nopersist|redis|--set architecture=standalone --set master.persistence.enabled=false
bitnami-redis|standalone-deployment|redis|--set architecture=standalone --set master.kind=Deployment
bitnami-redis|standalone-deployment-nopersist|redis|--set architecture=standalone --set master.kind=Deployment --set master.persistence.enabled=false
bitnami-redis|replica-existingclaim|redis|--set replica.persistence.existingClaim=redis-replica-data
bitnami-redis|sentinel|redis|--set sentinel.enabled=true
bitnami-redis|sentinel-nopersist|redis|--set sentinel.enabled=true --set replica.persistence.enabled=false --set master.persistence.enabled=false
bitnami-redis-cluster|defaults|redis-cluster|
bitnami-redis-cluster|nopersist|redis-cluster|--set persistence.enabled=false
bitnami-valkey|defaults|valkey|
bitnami-valkey|nopersist|valkey|--set primary.persistence.enabled=false --set replica.persistence.enabled=false
bitnami-valkey|sentinel|valkey|--set sentinel.enabled=true
bitnami-rabbitmq|defaults|rabbitmq|
bitnami-rabbitmq|nopersist|rabbitmq|--set persistence.enabled=false
bitnami-rabbitmq|ha|rabbitmq|--set replicaCount=3
bitnami-rabbitmq|ha-existingclaim|rabbitmq|--set replicaCount=3 --set persistence.existingClaim=rabbitmq-data
bitnami-kafka|defaults|kafka|
bitnami-kafka|nopersist|kafka|--set controller.persistence.enabled=false --set broker.persistence.enabled=false
bitnami-kafka|brokers|kafka|--set broker.replicaCount=3 --set controller.controllerOnly=true
bitnami-kafka|brokers-nopersist|kafka|--set broker.replicaCount=3 --set controller.controllerOnly=true --set controller.persistence.enabled=false --set broker.persistence.enabled=false
bitnami-zookeeper|defaults|zookeeper|
bitnami-zookeeper|nopersist|zookeeper|--set persistence.enabled=false
bitnami-zookeeper|ha|zookeeper|--set replicaCount=3
bitnami-zookeeper|ha-existingclaim|zookeeper|--set replicaCount=3 --set persistence.existingClaim=zk-data
bitnami-elasticsearch|defaults|elasticsearch|
bitnami-elasticsearch|nopersist|elasticsearch|--set master.persistence.enabled=false --set data.persistence.enabled=false
bitnami-opensearch|defaults|opensearch|
bitnami-opensearch|nopersist|opensearch|--set master.persistence.enabled=false --set data.persistence.enabled=false
bitnami-etcd|defaults|etcd|
bitnami-etcd|nopersist|etcd|--set persistence.enabled=false
bitnami-etcd|ha|etcd|--set replicaCount=3
bitnami-cassandra|defaults|cassandra|
bitnami-cassandra|nopersist|cassandra|--set persistence.enabled=false
bitnami-cassandra|ha|cassandra|--set replicaCount=3
bitnami-minio|defaults|minio|
bitnami-minio|nopersist|minio|--set persistence.enabled=false
bitnami-minio|distributed|minio|--set mode=distributed
bitnami-minio|distributed-nopersist|minio|--set mode=distributed --set persistence.enabled=false
bitnami-keycloak|defaults|keycloak|
bitnami-keycloak|nopersist|keycloak|--set postgresql.primary.persistence.enabled=false
bitnami-keycloak|ha|keycloak|--set replicaCount=3
bitnami-wordpress|defaults|wordpress|
bitnami-wordpress|nopersist|wordpress|--set persistence.enabled=false --set mariadb.primary.persistence.enabled=false
bitnami-wordpress|ha|wordpress|--set replicaCount=3
bitnami-wordpress|ha-rwx|wordpress|--set replicaCount=3 --set persistence.accessModes={ReadWriteMany}
bitnami-memcached|defaults|memcached|
bitnami-memcached|ha|memcached|--set architecture=high-availability --set replicaCount=3
bitnami-memcached|ha-persist|memcached|--set architecture=high-availability --set replicaCount=3 --set persistence.enabled=true
bitnami-clickhouse|defaults|clickhouse|
bitnami-clickhouse|nopersist|clickhouse|--set persistence.enabled=false --set keeper.persistence.enabled=false
bitnami-influxdb|defaults|influxdb|
bitnami-influxdb|nopersist|influxdb|--set persistence.enabled=false
bitnami-influxdb|file|influxdb|--set objectStore=file
bitnami-influxdb|file-nopersist|influxdb|--set objectStore=file --set persistence.enabled=false
bitnami-nats|defaults|nats|
bitnami-nats|persist|nats|--set persistence.enabled=true
bitnami-nats|ha|nats|--set replicaCount=3
bitnami-superset|defaults|superset|
bitnami-airflow|defaults|airflow|
bitnami-sonarqube|defaults|sonarqube|
bitnami-sonarqube|persist|sonarqube|--set persistence.enabled=true
bitnami-gitlab-runner|defaults|gitlab-runner|--set gitlabUrl=https://gitlab.example.com --set runnerToken=calibration
bitnami-solr|defaults|solr|
bitnami-solr|nopersist|solr|--set persistence.enabled=false --set zookeeper.persistence.enabled=false
bitnami-neo4j|defaults|neo4j|--set advertisedHost=neo4j.calib.svc
bitnami-neo4j|nopersist|neo4j|--set advertisedHost=neo4j.calib.svc --set persistence.enabled=false
bitnami-grafana|defaults|grafana|
bitnami-grafana|nopersist|grafana|--set persistence.enabled=false
bitnami-grafana|ha|grafana|--set grafana.replicaCount=3
bitnami-jenkins|defaults|jenkins|
bitnami-jenkins|nopersist|jenkins|--set persistence.enabled=false
bitnami-harbor|defaults|harbor|
bitnami-harbor|nopersist|harbor|--set persistence.enabled=false --set postgresql.primary.persistence.enabled=false --set redis.master.persistence.enabled=false
bitnami-thanos|components|thanos|-f $VALUES/thanos.yaml
bitnami-thanos|components-nopersist|thanos|-f $VALUES/thanos.yaml --set compactor.persistence.enabled=false --set storegateway.persistence.enabled=false --set ruler.persistence.enabled=false --set receive.persistence.enabled=false
jenkins|defaults|jenkins|
jenkins|nopersist|jenkins|--set persistence.enabled=false
grafana|defaults|grafana|
grafana|persist|grafana|--set persistence.enabled=true
grafana|persist-ha|grafana|--set persistence.enabled=true --set replicas=3
grafana|persist-ha-existingclaim|grafana|--set persistence.enabled=true --set persistence.existingClaim=grafana-data --set replicas=3
grafana|statefulset|grafana|--set persistence.enabled=true --set persistence.type=statefulset
loki|monolithic|loki|--set loki.storage.type=filesystem --set loki.useTestSchema=true --set singleBinary.replicas=1 --set write.replicas=0 --set read.replicas=0 --set backend.replicas=0
loki|monolithic-nopersist|loki|--set loki.storage.type=filesystem --set loki.useTestSchema=true --set singleBinary.replicas=1 --set write.replicas=0 --set read.replicas=0 --set backend.replicas=0 --set singleBinary.persistence.enabled=false
loki|simplescalable|loki|--set deploymentMode=SimpleScalable --set loki.useTestSchema=true --set loki.storage.bucketNames.chunks=chunks --set loki.storage.bucketNames.ruler=ruler --set loki.storage.bucketNames.admin=admin
loki|distributed|loki|--set deploymentMode=Distributed --set loki.useTestSchema=true --set loki.storage.bucketNames.chunks=chunks --set loki.storage.bucketNames.ruler=ruler --set loki.storage.bucketNames.admin=admin --set ingester.replicas=3 --set distributor.replicas=2 --set querier.replicas=2 --set queryFrontend.replicas=1 --set compactor.replicas=1 --set indexGateway.replicas=2 --set ruler.replicas=1 --set write.replicas=0 --set read.replicas=0 --set backend.replicas=0
tempo|defaults|tempo|
tempo|persist|tempo|--set persistence.enabled=true
tempo-distributed|defaults|tempo|--set ingest.kafka.address=kafka:9092
vault|defaults|vault|
vault|nopersist|vault|--set server.dataStorage.enabled=false
vault|ha|vault|--set server.ha.enabled=true
vault|ha-raft|vault|--set server.ha.enabled=true --set server.ha.raft.enabled=true
vault|dev|vault|--set server.dev.enabled=true
consul|defaults|consul|
consul|ha|consul|--set server.replicas=3
argo-cd|defaults|argocd|
argo-cd|ha|argocd|--set redis-ha.enabled=true --set controller.replicas=1 --set server.replicas=2 --set repoServer.replicas=2 --set applicationSet.replicas=2
harbor|defaults|harbor|
harbor|nopersist|harbor|--set persistence.enabled=false
harbor|ha|harbor|--set core.replicas=3 --set registry.replicas=3 --set jobservice.replicas=3 --set portal.replicas=3 --set trivy.replicas=3
prometheus|defaults|prometheus|
prometheus|nopersist|prometheus|--set server.persistentVolume.enabled=false --set alertmanager.persistence.enabled=false
prometheus|statefulset|prometheus|--set server.statefulSet.enabled=true
prometheus|ha|prometheus|--set server.replicaCount=2
sonarqube|defaults|sonarqube|--set monitoringPasscode=calib --set community.enabled=true
sonarqube|persist|sonarqube|--set monitoringPasscode=calib --set community.enabled=true --set persistence.enabled=true
nexus3|defaults|nexus3|
nexus3|persist|nexus3|--set persistence.enabled=true
nxrm-ha|defaults|nxrm|
artifactory-oss|defaults|artifactory|-f $VALUES/artifactory.yaml
artifactory-oss|nopersist|artifactory|-f $VALUES/artifactory.yaml --set artifactory.artifactory.persistence.enabled=false
influxdb2|defaults|influxdb|
influxdb2|nopersist|influxdb|--set persistence.enabled=false
nats|defaults|nats|
nats|jetstream|nats|--set config.jetstream.enabled=true
nats|jetstream-nopersist|nats|--set config.jetstream.enabled=true --set config.jetstream.fileStore.pvc.enabled=false
nats|cluster-jetstream|nats|--set config.cluster.enabled=true --set config.jetstream.enabled=true
trivy-operator|defaults|trivy-operator|
trivy-operator|builtin-server|trivy-operator|--set operator.builtInTrivyServer=true
neo4j|defaults|neo4j|--set neo4j.name=neo4j --set neo4j.password=calibration --set volumes.data.mode=defaultStorageClass
neo4j|volume-emptydir|neo4j|--set neo4j.name=neo4j --set neo4j.password=calibration --set volumes.data.mode=volume --set volumes.data.volume.emptyDir.sizeLimit=1Gi
temporal|defaults|temporal|-f $VALUES/temporal.yaml
temporal|ha|temporal|-f $VALUES/temporal.yaml --set server.replicaCount=3 --set web.replicaCount=2
airflow|kubernetesexecutor|airflow|--set postgresql.enabled=false --set redis.enabled=false --set airflow.executor=KubernetesExecutor --set workers.enabled=false --set flower.enabled=false --set externalDatabase.type=postgres --set externalDatabase.host=db
airflow|celery-logs-persist|airflow|--set postgresql.enabled=false --set redis.enabled=false --set externalDatabase.type=postgres --set externalDatabase.host=db --set externalRedis.host=redis --set logs.persistence.enabled=true --set scheduler.logCleanup.enabled=false --set workers.logCleanup.enabled=false --set workers.replicas=3
airflow|celery|airflow|--set postgresql.enabled=false --set redis.enabled=false --set externalDatabase.type=postgres --set externalDatabase.host=db --set externalRedis.host=redis --set workers.replicas=3
opensearch|defaults|opensearch|
opensearch|nopersist|opensearch|--set persistence.enabled=false
elasticsearch|defaults|elasticsearch|
elasticsearch|nopersist|elasticsearch|--set persistence.enabled=false
EOF
)

prepare

printf '%-22s %-24s %4s %4s %5s %5s  %s\n' CHART VARIANT STS DEP DENY WARN STATUS
TABLE=$CALIB/table.tsv
[ "$FILTER" = . ] || TABLE=$CALIB/table-partial.tsv
: >"$TABLE"
while IFS='|' read -r key variant rel args; do
  [ -z "$key" ] && continue
  name=$key--$variant
  [[ $name =~ $FILTER ]] || continue
  f=$OUT/$name.yaml
  # shellcheck disable=SC2086
  args=${args//\$VALUES/$VALUES}
  if "$HELM" template "$rel" "${DIR[$key]}" --namespace "$NS" $args >"$f" 2>"$OUT/$name.err"; then
    status=ok
  else
    status="render-failed: $(grep -v '^walk.go\|^WARNING\|^level=WARN' "$OUT/$name.err" | head -1 | cut -c1-80)"
  fi
  "$SG" check -f "$f" -n "$NS" -o json >"$JUDGED/$name.json" 2>"$JUDGED/$name.stderr"
  read -r sts dep deny warn < <(python3 - "$f" "$JUDGED/$name.json" <<'EOF'
import sys, json, yaml
sts = dep = 0
try:
    for d in yaml.safe_load_all(open(sys.argv[1])):
        if isinstance(d, dict):
            sts += d.get('kind') == 'StatefulSet'
            dep += d.get('kind') == 'Deployment'
except Exception:
    pass
try:
    r = json.load(open(sys.argv[2])).get('results') or []
except Exception:
    r = []
print(sts, dep, sum(x['action'] == 'deny' for x in r), sum(x['action'] == 'warn' for x in r))
EOF
)
  printf '%-22s %-24s %4s %4s %5s %5s  %s\n' "$key" "$variant" "$sts" "$dep" "$deny" "$warn" "$status"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "$variant" "$sts" "$dep" "$deny" "$warn" "$status" >>"$TABLE"
done <<<"$VARIANTS"

# Per-mount/per-volume inventory and the distinct results, for the analysis.
here=$(cd "$(dirname "$0")" && pwd)
python3 "$here/inventory.py" "$OUT" "$JUDGED" "$CALIB/inventory" >&2
python3 "$here/results.py" "$JUDGED" >"$CALIB/results.txt"
