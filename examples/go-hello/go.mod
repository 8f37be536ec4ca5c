module example.local/go-hello

go 1.21

require k8x.local/sdk v0.0.0

// The helper lives in this repository; `make examples` builds on the host, offline.
replace k8x.local/sdk => ../../sdk/go
