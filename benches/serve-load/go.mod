module custody.dev/benches/serve-load

go 1.22
