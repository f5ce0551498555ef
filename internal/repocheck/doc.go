// Package repocheck holds tests about the repository itself rather than about
// any package's code: that it stands alone, with no tracked file naming a path
// outside the checkout. It has no code of its own.
package repocheck
