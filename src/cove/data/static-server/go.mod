module cove.local/static-server

go 1.21
