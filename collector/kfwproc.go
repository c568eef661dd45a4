package collector

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/kfwlabs/kfw_exporter/abi"
)

// kfwProc reads the files of /proc/kfw below one procfs mount point.
type kfwProc struct {
	dir     string
	readers sync.Pool // *bufio.Reader, reused across scrapes
}

// kfwProcBufSize lets a 4096-rule rule_stats go through in a few reads.
const kfwProcBufSize = 32 << 10

func newKfwProc(procPath string) *kfwProc {
	return &kfwProc{
		dir:     filepath.Join(procPath, abi.ProcDir),
		readers: sync.Pool{New: func() any { return bufio.NewReaderSize(nil, kfwProcBufSize) }},
	}
}

// read opens one file and hands it to parse through a pooled reader. A file
// that does not exist means the module is not loaded: ErrNoData.
func (p *kfwProc) read(name string, parse func(r *bufio.Reader, path string) error) error {
	path := filepath.Join(p.dir, name)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: kfw module not loaded: %w", ErrNoData, err)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	br := p.readers.Get().(*bufio.Reader)
	br.Reset(f)
	defer func() {
		br.Reset(nil)
		p.readers.Put(br)
	}()
	return parse(br, path)
}

// stats reads /proc/kfw/stats. Errors other than ErrNoData are *abi.ProcError
// (garbled, truncated, or abi.ErrUnsupportedVersion) or I/O errors.
func (p *kfwProc) stats() (abi.ModuleStats, error) {
	var st abi.ModuleStats
	err := p.read(abi.ProcStats, func(r *bufio.Reader, path string) error {
		var err error
		st, err = abi.ParseProcStats(r, path)
		return err
	})
	return st, err
}

// hooks reads /proc/kfw/hooks.
func (p *kfwProc) hooks() ([]abi.ProcHookCounters, error) {
	var rows []abi.ProcHookCounters
	err := p.read(abi.ProcHooks, func(r *bufio.Reader, path string) error {
		var err error
		rows, err = abi.ParseProcHooks(r, path)
		return err
	})
	return rows, err
}

// ruleStats streams /proc/kfw/rule_stats through fn.
func (p *kfwProc) ruleStats(fn func(abi.ProcRuleCounters) error) error {
	return p.read(abi.ProcRuleStats, func(r *bufio.Reader, path string) error {
		return abi.ParseProcRuleStats(r, path, fn)
	})
}

// checkModule fails unless the module is loaded with an ABI version this
// exporter speaks: the other files are only read after it succeeded.
func (p *kfwProc) checkModule() error {
	_, err := p.stats()
	return err
}
