"""kubeshape's test bed: real etcd, kube-apiserver, controller-manager, scheduler, kwok and registry on
loopback, built from Go modules (build.sh) and started by Python. Not part of the installed package."""
