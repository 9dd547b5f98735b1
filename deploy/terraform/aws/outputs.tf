output "vpc_id" {
  description = "The VPC's id."
  value       = aws_vpc.main.id
}

output "public_subnet_cidrs" {
  description = "The ALB's subnets: the Helm value networkPolicy.apiFrom (ipBlock per CIDR)."
  value       = local.public_cidrs
}

output "data_subnet_cidrs" {
  description = "RDS's and ElastiCache's subnets: the Helm values networkPolicy.egress.postgres.to and .redis.to."
  value       = local.data_cidrs
}

output "eks_cluster_name" {
  description = "EKS cluster name: aws eks update-kubeconfig --name <this>."
  value       = aws_eks_cluster.main.name
}

output "eks_cluster_endpoint" {
  description = "EKS API endpoint."
  value       = aws_eks_cluster.main.endpoint
}

output "chartstream_role_arn" {
  description = "IAM role of chartstream's service account (IRSA: KMS, S3, rds-db:connect): the Helm value serviceAccount.roleArn."
  value       = aws_iam_role.chartstream.arn
}

output "db_endpoint" {
  description = "RDS primary host:port, for DATABASE_URL, DATABASE_RELAY_URL and DATABASE_ADMIN_URL (sslmode=verify-full)."
  value       = aws_db_instance.primary.endpoint
}

output "db_replica_endpoint" {
  description = "RDS read replica host:port, for DATABASE_REPLICA_URL (chartstream_analytics, sslmode=verify-full): the analytics API."
  value       = aws_db_instance.replica.endpoint
}

output "db_master_secret_arn" {
  description = "Secrets Manager secret RDS keeps the master password in (for creating the chartstream roles)."
  value       = aws_db_instance.primary.master_user_secret[0].secret_arn
}

output "redis_endpoint" {
  description = "ElastiCache primary endpoint (TLS, port 6379)."
  value       = aws_elasticache_replication_group.main.primary_endpoint_address
}

output "redis_url_secret_arn" {
  description = "Secrets Manager secret holding REDIS_URL (rediss://, with the auth token)."
  value       = aws_secretsmanager_secret.redis_url.arn
}

output "tenant_keys_kms_key_arn" {
  description = "KMS key that wraps the tenant keys of this environment: the Helm value phiKeys.awsKms.keyId (AWS_KMS_KEY_ID)."
  value       = aws_kms_key.tenant_keys.arn
}

output "tenant_keys_kms_alias" {
  description = "Alias of the tenant keys' KMS key."
  value       = aws_kms_alias.tenant_keys.name
}

output "exports_bucket" {
  description = "S3 bucket for exports (versioned, KMS-encrypted, private)."
  value       = aws_s3_bucket.exports.bucket
}

output "alb_dns_name" {
  description = "The API's load balancer: point the API's host name (CNAME or alias) here."
  value       = aws_lb.api.dns_name
}

output "api_node_port" {
  description = "The NodePort the ALB forwards to: the Helm value serve.service.nodePort."
  value       = var.api_node_port
}

output "region" {
  description = "The environment's region: the Helm value phiKeys.awsKms.region (AWS_REGION)."
  value       = var.region
}
