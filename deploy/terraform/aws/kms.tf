# The environment's key for tenant keys: chartstream's PHI key provider
# wraps each tenant's key under it (GenerateDataKey, Decrypt with the tenant
# as encryption context). One per environment, so no environment can open
# another's PHI. Rotated yearly by KMS; never deleted without the waiting
# period.
resource "aws_kms_key" "tenant_keys" {
  description             = "${local.name}: wraps chartstream's per-tenant PHI keys"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
}

resource "aws_kms_alias" "tenant_keys" {
  name          = "alias/${local.name}-tenant-keys"
  target_key_id = aws_kms_key.tenant_keys.key_id
}

# Storage encryption (RDS, ElastiCache, S3 exports, EKS secrets, the Redis
# URL secret), apart from the tenant keys so that access to one is not
# access to the other.
resource "aws_kms_key" "data" {
  description             = "${local.name}: storage encryption (RDS, ElastiCache, S3, EKS secrets)"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
}

resource "aws_kms_alias" "data" {
  name          = "alias/${local.name}-data"
  target_key_id = aws_kms_key.data.key_id
}
