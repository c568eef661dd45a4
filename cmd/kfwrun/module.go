package main

import (
	"bytes"
	"debug/elf"
	"fmt"
)

// genlFamilyAlias is the alias MODULE_ALIAS_GENL_FAMILY("kfw") puts in
// kfw.ko: net-pf-PF_NETLINK-proto-NETLINK_GENERIC-family-kfw.
const genlFamilyAlias = "alias=net-pf-16-proto-16-family-kfw"

// moduleHasEvents reports whether a kfw.ko declares the generic netlink
// family that carries the events, by its module alias.
func moduleHasEvents(ko string) (bool, error) {
	f, err := elf.Open(ko)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return false, fmt.Errorf("%s: no .modinfo section: not a kernel module", ko)
	}
	info, err := sec.Data()
	if err != nil {
		return false, fmt.Errorf("%s: %w", ko, err)
	}
	for _, field := range bytes.Split(info, []byte{0}) {
		if string(field) == genlFamilyAlias {
			return true, nil
		}
	}
	return false, nil
}
