#!/bin/sh
# Launches Temporal's Java time-skipping test server with the jars that
# scripts/temporal-test-server/pom.xml resolved. The SDK calls it as `<launcher> <port> --enable-time-skipping`.
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
lib="${TEMPORAL_TEST_SERVER_LIB:-$here/.tools/temporal-test-server}"
exec java -XX:+UseSerialGC -Xss512k -cp "$lib/*" io.temporal.testserver.TestServer "$@"
