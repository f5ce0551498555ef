// Package deploy holds no code: it is the home of the deployment files
// (systemd/, kubernetes/, dashboards/, and macos/ and compose/ owned by their
// own tests) and of deploy_test.go, which parses every YAML, JSON and NDJSON
// file here, loads the agent configs through agent/config, and checks that
// the files agree with each other, so they cannot rot unnoticed.
//
// It must not grow runtime code: nothing imports it.
package deploy
