variable "environment" {
  description = "Environment name (dev, staging, prod, or another short name): it names every resource and has its own KMS key for tenant keys."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.environment))
    error_message = "environment must be 2 to 15 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "region" {
  description = "AWS region, e.g. eu-central-1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-central-1."
  }
}

variable "vpc_cidr" {
  description = "The VPC's CIDR block (a /16 is split into public, application and data subnets per availability zone)."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 18
    error_message = "vpc_cidr must be a CIDR block of /18 or larger."
  }
}

variable "availability_zones" {
  description = "How many availability zones to spread over (subnets, NAT gateways, nodes, RDS Multi-AZ)."
  type        = number
  default     = 3

  validation {
    condition     = var.availability_zones >= 2 && var.availability_zones <= 3
    error_message = "availability_zones must be 2 or 3."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper, for dev) instead of one per zone."
  type        = bool
  default     = false
}

variable "eks_version" {
  description = "Kubernetes version of the EKS cluster."
  type        = string
  default     = "1.34"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.eks_version))
    error_message = "eks_version must look like 1.34."
  }
}

variable "eks_public_access_cidrs" {
  description = "CIDR blocks allowed to reach the EKS API endpoint from the internet; empty makes the endpoint private only."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.eks_public_access_cidrs : can(cidrhost(c, 0))])
    error_message = "eks_public_access_cidrs must be CIDR blocks."
  }
}

variable "node_instance_types" {
  description = "EC2 instance types of the managed node group."
  type        = list(string)
  default     = ["m7i.large"]

  validation {
    condition     = length(var.node_instance_types) > 0
    error_message = "node_instance_types must name at least one instance type."
  }
}

variable "node_count" {
  description = "Managed node group size: min, desired and max nodes."
  type = object({
    min     = number
    desired = number
    max     = number
  })
  default = { min = 3, desired = 3, max = 9 }

  validation {
    condition     = var.node_count.min >= 1 && var.node_count.min <= var.node_count.desired && var.node_count.desired <= var.node_count.max
    error_message = "node_count must satisfy 1 <= min <= desired <= max."
  }
}

variable "api_node_port" {
  description = "NodePort of the chartstream serve Service (the Helm value serve.service.nodePort) that the ALB forwards to."
  type        = number
  default     = 30080

  validation {
    condition     = var.api_node_port >= 30000 && var.api_node_port <= 32767
    error_message = "api_node_port must be in Kubernetes' NodePort range, 30000-32767."
  }
}

variable "certificate_arn" {
  description = "ACM certificate ARN for the ALB's HTTPS listener (the API's host name)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "alb_ingress_cidrs" {
  description = "CIDR blocks allowed to reach the API through the ALB on 443."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.alb_ingress_cidrs) > 0 && alltrue([for c in var.alb_ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "alb_ingress_cidrs must be one or more CIDR blocks."
  }
}

variable "db_instance_class" {
  description = "RDS instance class of the primary and the read replica."
  type        = string
  default     = "db.m7g.large"

  validation {
    condition     = startswith(var.db_instance_class, "db.")
    error_message = "db_instance_class must be an RDS instance class such as db.m7g.large."
  }
}

variable "db_engine_version" {
  description = "PostgreSQL major version on RDS (chartstream needs 15 or later)."
  type        = string
  default     = "17"

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?$", var.db_engine_version)) && tonumber(split(".", var.db_engine_version)[0]) >= 15
    error_message = "db_engine_version must be PostgreSQL 15 or later."
  }
}

variable "db_allocated_storage_gb" {
  description = "RDS storage in GiB at creation (it grows on its own up to ten times this)."
  type        = number
  default     = 100

  validation {
    condition     = var.db_allocated_storage_gb >= 20
    error_message = "db_allocated_storage_gb must be at least 20."
  }
}

variable "db_backup_retention_days" {
  description = "Days of RDS automated backups (point-in-time recovery window)."
  type        = number
  default     = 35

  validation {
    condition     = var.db_backup_retention_days >= 7 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be 7 to 35."
  }
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.m7g.large"

  validation {
    condition     = startswith(var.redis_node_type, "cache.")
    error_message = "redis_node_type must be an ElastiCache node type such as cache.m7g.large."
  }
}

variable "redis_replicas" {
  description = "ElastiCache nodes in the replication group (2 or more gives automatic failover across zones)."
  type        = number
  default     = 2

  validation {
    condition     = var.redis_replicas >= 1 && var.redis_replicas <= 6
    error_message = "redis_replicas must be 1 to 6."
  }
}

variable "kms_deletion_window_days" {
  description = "Waiting period before a scheduled KMS key deletion takes effect: the last chance to cancel the loss of every tenant's keys."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be 7 to 30."
  }
}

variable "exports_noncurrent_days" {
  description = "Days an overwritten or deleted export object version is kept before it expires."
  type        = number
  default     = 90

  validation {
    condition     = var.exports_noncurrent_days >= 1
    error_message = "exports_noncurrent_days must be at least 1."
  }
}

variable "k8s_namespace" {
  description = "Kubernetes namespace chartstream is installed in (for its IAM role's trust)."
  type        = string
  default     = "chartstream"
}

variable "k8s_service_account" {
  description = "Kubernetes service account of chartstream's pods (the Helm release's full name)."
  type        = string
  default     = "chartstream"
}

variable "deletion_protection" {
  description = "Protect RDS from deletion and keep a final snapshot; turn off only for throw-away environments."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
