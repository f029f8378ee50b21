//go:build unix

package main

import "testing"

// Each router serves through 2 rolling reloads under load with no
// request lost, its path parameter read right, and stops with exit 0:
// see serveUnderReloads.

func TestChiE2E(t *testing.T)     { serveUnderReloads(t, "chi") }
func TestGorillaE2E(t *testing.T) { serveUnderReloads(t, "gorilla") }
func TestGinE2E(t *testing.T)     { serveUnderReloads(t, "gin") }
func TestEchoE2E(t *testing.T)    { serveUnderReloads(t, "echo") }
