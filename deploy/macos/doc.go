// Package macos holds no code: it is the home of the macOS deployment files
// (com.fileward.agent.plist for launchd, fileward-pppc.mobileconfig granting
// Full Disk Access, config.yaml) and of macos_test.go, which parses them and
// loads the config through agent/config so they cannot rot on Linux CI.
//
// It must not grow runtime code: nothing imports it.
package macos
