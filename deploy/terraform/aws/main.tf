locals {
  name = "chartstream-${var.environment}"
  azs  = slice(data.aws_availability_zones.available.names, 0, var.availability_zones)

  # A /16 gives /20s: public (ALB, NAT) 0-2, application (EKS nodes) 3-5,
  # data (RDS, ElastiCache) 6-8.
  public_cidrs = [for i in range(var.availability_zones) : cidrsubnet(var.vpc_cidr, 4, i)]
  app_cidrs    = [for i in range(var.availability_zones) : cidrsubnet(var.vpc_cidr, 4, i + 3)]
  data_cidrs   = [for i in range(var.availability_zones) : cidrsubnet(var.vpc_cidr, 4, i + 6)]

  tags = merge(var.tags, {
    Project     = "chartstream"
    Environment = var.environment
    ManagedBy   = "terraform"
  })
}

data "aws_availability_zones" "available" {
  state = "available"
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}
