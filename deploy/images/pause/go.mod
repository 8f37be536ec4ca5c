module k8x.local/pause

go 1.22
