// Package deploy holds chartstream's deployment files, and tests that
// check them without docker, a cluster or a cloud account: the container
// image (../Dockerfile), the compose stack (compose/), the Helm chart
// (helm/chartstream) and the Terraform for AWS (terraform/aws). The tests
// parse the real files with the tools' own loaders, run helm where it is
// built (deploy/local/stack.sh tools), and check every setting a file
// gives chartstream against the settings the binary reads.
package deploy
