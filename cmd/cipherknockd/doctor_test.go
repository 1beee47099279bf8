package main

import "testing"

func TestEffectiveCaps(t *testing.T) {
	status := "Name:\tcipherknockd\nCapInh:\t0000000000000000\nCapPrm:\t0000000000003000\nCapEff:\t0000000000003000\n"
	caps, err := effectiveCaps(status)
	if err != nil || caps&(1<<capNetRaw) == 0 || caps&(1<<capNetAdmin) == 0 || caps != 0x3000 {
		t.Fatalf("%x %v", caps, err)
	}
	if caps, err := effectiveCaps("CapEff:\t0000000000000000\n"); err != nil || caps != 0 {
		t.Fatalf("%x %v", caps, err)
	}
	if _, err := effectiveCaps("Name: x\n"); err == nil {
		t.Fatal("no CapEff line accepted")
	}
}
