// Package tether holds Tether's domain vocabulary: the people, organizations
// and roles, the projects tied to Bitbucket repositories, the two parts of a
// project's integration (deploy key and webhook) with their health statuses
// and reasons, the deliveries and workflows webhooks bring, and the errors
// every layer uses to speak of them.
//
// It imports nothing of Tether's: the store (package db) implements it,
// services act on it and views render it, as WTF Dial keeps its root
// package free of adapters.
package tether
