// Package studio holds the CXone Studio side of the integration: the
// snippets a CXone admin pastes into the call's scripts (*.snippet), the
// guide (README.md), the JSON they send (fixtures/), and the tests that keep
// all three in step with each other and with the bridge. It has no code that
// runs in the bridge.
package studio
