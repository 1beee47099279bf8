// Package policy decides, for an opened knock, whether its user may have
// what it asks for (SPEC.md §11: what a receiver does with an opened
// knock): the source the knock may come from, the ports, the longest
// duration and the addresses an explicit-address knock may open. Package
// config reads the users from the daemon's configuration file.
package policy
