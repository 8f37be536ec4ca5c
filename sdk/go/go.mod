module k8x.local/sdk

go 1.21
