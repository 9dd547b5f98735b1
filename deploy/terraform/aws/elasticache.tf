# Redis (idempotency keys, revocations, rate limits): TLS in transit
# (required), encrypted at rest, an auth token; automatic failover across
# zones with two or more nodes.
resource "random_password" "redis_auth" {
  length  = 48
  special = false
}

resource "aws_elasticache_subnet_group" "main" {
  name       = local.name
  subnet_ids = aws_subnet.data[*].id
}

resource "aws_elasticache_replication_group" "main" {
  replication_group_id = local.name
  description          = "chartstream ${var.environment}: idempotency, revocation, rate limits"
  engine               = "redis"
  engine_version       = "7.1"
  node_type            = var.redis_node_type
  port                 = 6379

  num_cache_clusters         = var.redis_replicas
  automatic_failover_enabled = var.redis_replicas > 1
  multi_az_enabled           = var.redis_replicas > 1

  subnet_group_name  = aws_elasticache_subnet_group.main.name
  security_group_ids = [aws_security_group.redis.id]

  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.data.arn
  transit_encryption_enabled = true
  transit_encryption_mode    = "required"
  auth_token                 = random_password.redis_auth.result
  auth_token_update_strategy = "ROTATE"

  snapshot_retention_limit = 7
}

# The URL chartstream's REDIS_URL takes (rediss: TLS), for the Kubernetes
# Secret; never in an output.
resource "aws_secretsmanager_secret" "redis_url" {
  name       = "${local.name}/redis-url"
  kms_key_id = aws_kms_key.data.arn
}

resource "aws_secretsmanager_secret_version" "redis_url" {
  secret_id     = aws_secretsmanager_secret.redis_url.id
  secret_string = "rediss://:${random_password.redis_auth.result}@${aws_elasticache_replication_group.main.primary_endpoint_address}:6379/0"
}
