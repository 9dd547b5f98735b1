# chartstream's pods (IAM roles for service accounts): the tenant key,
# the exports bucket, and IAM authentication to RDS as its roles.
locals {
  oidc_issuer = replace(aws_eks_cluster.main.identity[0].oidc[0].issuer, "https://", "")
  db_roles    = ["chartstream_app", "chartstream_relay", "chartstream_analytics", "chartstream_owner"]
}

resource "aws_iam_role" "chartstream" {
  name = "${local.name}-app"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = aws_iam_openid_connect_provider.eks.arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${local.oidc_issuer}:sub" = "system:serviceaccount:${var.k8s_namespace}:${var.k8s_service_account}"
          "${local.oidc_issuer}:aud" = "sts.amazonaws.com"
        }
      }
    }]
  })
}

resource "aws_iam_role_policy" "chartstream" {
  name = "chartstream"
  role = aws_iam_role.chartstream.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "TenantKeys"
        Effect   = "Allow"
        Action   = ["kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt", "kms:DescribeKey"]
        Resource = aws_kms_key.tenant_keys.arn
      },
      {
        Sid      = "Exports"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject", "s3:ListBucket"]
        Resource = [aws_s3_bucket.exports.arn, "${aws_s3_bucket.exports.arn}/*"]
      },
      {
        Sid      = "ExportsEncryption"
        Effect   = "Allow"
        Action   = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource = aws_kms_key.data.arn
      },
      {
        Sid    = "DatabaseIAMAuth"
        Effect = "Allow"
        Action = "rds-db:connect"
        Resource = flatten([for db in [aws_db_instance.primary, aws_db_instance.replica] : [for role in local.db_roles :
        "arn:${data.aws_partition.current.partition}:rds-db:${var.region}:${data.aws_caller_identity.current.account_id}:dbuser:${db.resource_id}/${role}"]])
      },
    ]
  })
}
