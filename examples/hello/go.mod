module cove.example/hello

go 1.21
