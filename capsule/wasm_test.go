package capsule

// A tiny wasm binary assembler for modules the Go toolchain cannot produce
// (bad imports, no memory) and for the host-call benchmark's loop.

type wasmFunc struct {
	params, results []byte // value types: 0x7f i32, 0x7e i64
}

type wasmImport struct {
	module, name string
	typ          int
}

type wasmModule struct {
	types      []wasmFunc
	imports    []wasmImport
	funcs      []int    // type index of each defined function
	bodies     [][]byte // instructions of each defined function, without locals/end
	exports    map[string]int
	memory     bool // define and export "memory" (1 page)
	importsMem bool // import env.memory instead
}

func uleb(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func name(b []byte, s string) []byte { return append(uleb(b, uint32(len(s))), s...) }

func section(b []byte, id byte, body []byte) []byte {
	b = append(b, id)
	b = uleb(b, uint32(len(body)))
	return append(b, body...)
}

func (m wasmModule) bytes() []byte {
	b := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	var s []byte
	s = uleb(s, uint32(len(m.types)))
	for _, t := range m.types {
		s = append(s, 0x60)
		s = uleb(s, uint32(len(t.params)))
		s = append(s, t.params...)
		s = uleb(s, uint32(len(t.results)))
		s = append(s, t.results...)
	}
	b = section(b, 1, s)
	nImports := len(m.imports)
	if m.importsMem {
		nImports++
	}
	if nImports > 0 {
		s = uleb(nil, uint32(nImports))
		for _, im := range m.imports {
			s = name(s, im.module)
			s = name(s, im.name)
			s = append(s, 0x00)
			s = uleb(s, uint32(im.typ))
		}
		if m.importsMem {
			s = name(s, "env")
			s = name(s, "memory")
			s = append(s, 0x02, 0x00, 0x01)
		}
		b = section(b, 2, s)
	}
	if len(m.funcs) > 0 {
		s = uleb(nil, uint32(len(m.funcs)))
		for _, f := range m.funcs {
			s = uleb(s, uint32(f))
		}
		b = section(b, 3, s)
	}
	if m.memory {
		b = section(b, 5, []byte{0x01, 0x00, 0x01})
	}
	nExports := len(m.exports)
	if m.memory {
		nExports++
	}
	if nExports > 0 {
		s = uleb(nil, uint32(nExports))
		if m.memory {
			s = name(s, "memory")
			s = append(s, 0x02, 0x00)
		}
		for n, idx := range m.exports {
			s = name(s, n)
			s = append(s, 0x00)
			s = uleb(s, uint32(idx))
		}
		b = section(b, 7, s)
	}
	if len(m.bodies) > 0 {
		s = uleb(nil, uint32(len(m.bodies)))
		for _, body := range m.bodies {
			fn := append([]byte{0x00}, body...) // no locals
			fn = append(fn, 0x0b)
			s = uleb(s, uint32(len(fn)))
			s = append(s, fn...)
		}
		b = section(b, 10, s)
	}
	return b
}

// hostLoopModule exports loop(n i32), which calls the imported function
// (type () -> i64, e.g. astrid_v1.sys_clock_ms) n times, or does nothing n
// times when call is false.
func hostLoopModule(module, fn string, call bool) []byte {
	body := []byte{
		0x02, 0x40, // block
		0x03, 0x40, // loop
		0x20, 0x00, 0x45, 0x0d, 0x01, // local.get 0; i32.eqz; br_if 1
	}
	if call {
		body = append(body, 0x10, 0x00, 0x1a) // call 0; drop
	}
	body = append(body,
		0x20, 0x00, 0x41, 0x01, 0x6b, 0x21, 0x00, // n = n - 1
		0x0c, 0x00, // br 0
		0x0b, 0x0b, // end loop, end block
	)
	return wasmModule{
		types:   []wasmFunc{{results: []byte{0x7e}}, {params: []byte{0x7f}}},
		imports: []wasmImport{{module, fn, 0}},
		funcs:   []int{1},
		bodies:  [][]byte{body},
		exports: map[string]int{"loop": 1},
		memory:  true,
	}.bytes()
}
