# The ALB: HTTPS from the allowed CIDRs, and to the nodes' NodePort only.
resource "aws_security_group" "alb" {
  name        = "${local.name}-alb"
  description = "chartstream ALB: HTTPS in, the API NodePort out"
  vpc_id      = aws_vpc.main.id
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each          = toset(var.alb_ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS to the API"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  for_each          = toset(var.alb_ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTP, redirected to HTTPS"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "alb_to_nodes" {
  security_group_id            = aws_security_group.alb.id
  description                  = "The API NodePort on the EKS nodes"
  ip_protocol                  = "tcp"
  from_port                    = var.api_node_port
  to_port                      = var.api_node_port
  referenced_security_group_id = aws_eks_cluster.main.vpc_config[0].cluster_security_group_id
}

resource "aws_vpc_security_group_ingress_rule" "nodes_from_alb" {
  security_group_id            = aws_eks_cluster.main.vpc_config[0].cluster_security_group_id
  description                  = "The API NodePort from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = var.api_node_port
  to_port                      = var.api_node_port
  referenced_security_group_id = aws_security_group.alb.id
}

# PostgreSQL: only from the EKS cluster (nodes and pods).
resource "aws_security_group" "db" {
  name        = "${local.name}-db"
  description = "chartstream RDS PostgreSQL: 5432 from EKS only"
  vpc_id      = aws_vpc.main.id
}

resource "aws_vpc_security_group_ingress_rule" "db_from_eks" {
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from the EKS cluster"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_eks_cluster.main.vpc_config[0].cluster_security_group_id
}

# Redis: only from the EKS cluster.
resource "aws_security_group" "redis" {
  name        = "${local.name}-redis"
  description = "chartstream ElastiCache Redis: 6379 from EKS only"
  vpc_id      = aws_vpc.main.id
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_eks" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis (TLS) from the EKS cluster"
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  referenced_security_group_id = aws_eks_cluster.main.vpc_config[0].cluster_security_group_id
}
