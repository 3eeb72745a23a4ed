// Package deploy holds Dura's deployment files (Dockerfile, image build
// script, docker-compose cluster, Kubernetes and systemd files) and their
// tests: the manifests are parsed on every "go test", and the compose
// test (DURA_COMPOSE_TEST=1) runs a three-node cluster in containers.
package deploy
