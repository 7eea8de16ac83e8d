# Environment of the embedded defaults; source it: `. scripts/env.sh`.
# Every value can be overridden by setting it before sourcing (or in .env, see .env.example).
SPARKVISION_HOME="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export SPARKVISION_HOME
if [ -f "$SPARKVISION_HOME/.env" ]; then set -a; . "$SPARKVISION_HOME/.env"; set +a; fi

export PATH="$SPARKVISION_HOME/.venv/bin:$PATH"
# This checkout's code first (the venv's .pth names the checkout that ran setup; a second
# worktree sharing the venv must still import its own sparkvision, in Spark's workers too).
case ":${PYTHONPATH:-}:" in *":$SPARKVISION_HOME:"*) ;; *) export PYTHONPATH="$SPARKVISION_HOME${PYTHONPATH:+:$PYTHONPATH}" ;; esac
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$SPARKVISION_HOME/.venv/bin/python}"
export PYSPARK_DRIVER_PYTHON="${PYSPARK_DRIVER_PYTHON:-$PYSPARK_PYTHON}"
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
# spark-submit's driver JVM: classes mapped from the archive of scripts/spark_cds.sh and the quick
# JIT tier only (short jobs on few cores: about 4 s less per spark-submit, docs/benchmarks.md), and
# the serial collector (for a driver heap of Spark's default 1 GB or less, G1's concurrent threads
# and write barriers cost CPU that such a heap does not need: less CPU and memory per job,
# docs/ingest.md "JVM start"), whose heap grows after a full collection only when less than 20%
# of it is free (the default 40% lets a long job's heap grow to its cap with garbage: the driver
# stays near what it holds; measured: same GC time at 700,000 files, +0.5 s at 7,000,000). Set
# SPARK_SUBMIT_OPTS (even empty) to choose other options (with a driver heap of several GB, leave
# out -XX:+UseSerialGC).
SPARKVISION_SPARK_CDS="${SPARKVISION_SPARK_CDS:-$SPARKVISION_HOME/.venv/spark-cds.jsa}"
if [ -z "${SPARK_SUBMIT_OPTS+set}" ] && [ -f "$SPARKVISION_SPARK_CDS" ]; then
  export SPARK_SUBMIT_OPTS="-XX:SharedArchiveFile=$SPARKVISION_SPARK_CDS -Xlog:cds=off -Xlog:cds+dynamic=off -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:MinHeapFreeRatio=20"
fi
# glibc's malloc keeps up to 8 arenas per core, each holding on to what its threads freed: a JVM
# whose task threads come and go (Spark's executors) grows with the length of the job, not with
# what it holds. Two arenas, as Hadoop caps them for its daemons and containers (at 4): the
# 7,000,000-file ingest's driver JVM 728-760 MB against 758-766 MB, the 700,000-file one
# unchanged (docs/ingest.md "Memory").
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
export JAVA_HOME="${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}"

# Airflow: SQLite metadata DB and LocalExecutor under the repo; few workers on a small machine.
export AIRFLOW_HOME="${AIRFLOW_HOME:-$SPARKVISION_HOME/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$SPARKVISION_HOME/dags}"
export AIRFLOW__CORE__PLUGINS_FOLDER="${AIRFLOW__CORE__PLUGINS_FOLDER:-$SPARKVISION_HOME/plugins}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__CORE__UNIT_TEST_MODE="${AIRFLOW__CORE__UNIT_TEST_MODE:-False}"
export AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="${AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK:-True}"

# Connections (Airflow reads AIRFLOW_CONN_<ID>; JSON form, see docs/configuration.md).
# 'spark://local[*]' in URI form silently becomes YARN: keep the JSON form. The defaults are in
# variables: a JSON default inside ${VAR:-...} would end at its first '}' and append the rest to
# a value that is already set.
_sv_spark_conn='{"conn_type": "spark", "host": "local[*]"}'
_sv_fs_conn='{"conn_type": "fs", "extra": {"path": "/"}}'
_sv_webhdfs_conn="{\"conn_type\": \"webhdfs\", \"host\": \"127.0.0.1\", \"port\": 9870, \"login\": \"$(id -un)\"}"
export AIRFLOW_CONN_SPARK_DEFAULT="${AIRFLOW_CONN_SPARK_DEFAULT:-$_sv_spark_conn}"
export AIRFLOW_CONN_FS_DEFAULT="${AIRFLOW_CONN_FS_DEFAULT:-$_sv_fs_conn}"
export AIRFLOW_CONN_WEBHDFS_DEFAULT="${AIRFLOW_CONN_WEBHDFS_DEFAULT:-$_sv_webhdfs_conn}"
unset _sv_spark_conn _sv_fs_conn _sv_webhdfs_conn

# TensorFlow: quiet C++ logs.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
