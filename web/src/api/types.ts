// Wire shapes, as described by /api/v1/openapi.json.

export type Timestamp = string;

export const CERT_STATUSES = [
  'Pending',
  'Active',
  'Expiring',
  'Expired',
  'RenewalInProgress',
  'Failed',
  'Revoked',
  'Archived',
] as const;
export type CertStatus = (typeof CERT_STATUSES)[number];

export const JOB_STATUSES = [
  'Pending',
  'AwaitingCSR',
  'AwaitingApproval',
  'Running',
  'Completed',
  'Failed',
  'Cancelled',
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const JOB_TYPES = ['Issuance', 'Renewal', 'Deployment', 'Validation'] as const;

export interface Certificate {
  id: string;
  name: string;
  common_name: string;
  sans: string[];
  environment: string | null;
  owner_id: string | null;
  team_id: string | null;
  issuer_id: string | null;
  renewal_policy_id: string | null;
  profile_id: string | null;
  status: CertStatus;
  expires_at: Timestamp | null;
  tags: Record<string, unknown>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface CertificateVersion {
  id?: string;
  serial_number: string;
  fingerprint_sha256: string;
  pem_chain: string;
  not_before: Timestamp;
  not_after: Timestamp;
  key_algorithm: string | null;
  key_size: number | null;
  created_at?: Timestamp;
  job_id?: string | null;
}

export interface PemExport {
  certificate: string;
  chain?: string;
  full_chain?: string;
  pem_chain?: string;
  serial_number?: string;
  [k: string]: unknown;
}

export interface Job {
  id: string;
  type: string;
  certificate_id: string;
  target_id: string | null;
  agent_id: string | null;
  status: JobStatus;
  attempts: number;
  max_attempts: number;
  last_error: string | null;
  scheduled_at: Timestamp | null;
  started_at: Timestamp | null;
  completed_at: Timestamp | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface Agent {
  id: string;
  name: string;
  hostname: string | null;
  status: 'Online' | 'Offline' | 'Degraded' | string;
  os: string | null;
  architecture: string | null;
  ip_address: string | null;
  version: string | null;
  last_heartbeat_at: Timestamp | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface Target {
  id: string;
  name: string;
  type: string;
  agent_id: string | null;
  config: Record<string, unknown>;
  enabled: boolean;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface Issuer {
  id: string;
  name: string;
  type: string;
  config: Record<string, unknown>;
  enabled: boolean;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface Notification {
  id: string;
  type: string;
  certificate_id: string | null;
  channel: string | null;
  recipient: string | null;
  message: string;
  status: string;
  read: boolean;
  attempts: number;
  last_error: string | null;
  next_attempt_at?: Timestamp | null;
  sent_at: Timestamp | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface AuditEvent {
  id: string;
  timestamp: Timestamp;
  actor: string;
  actor_type: string;
  action: string;
  resource_type: string;
  resource_id: string;
  details: Record<string, unknown> | null;
}

export interface ApiCall {
  id: string;
  request_id: string;
  method: string;
  path: string;
  actor: string;
  status: number;
  latency_ms: number;
  body_sha256: string | null;
  timestamp: Timestamp;
}

export interface PolicyViolation {
  id: string;
  certificate_id: string;
  rule_id: string;
  severity: string;
  message: string;
  created_at: Timestamp;
}

export interface Plugin {
  id: string;
  kind: string | null;
  version?: string;
  capabilities?: string[] | Record<string, unknown>;
  config_schema?: Record<string, unknown> | null;
  [k: string]: unknown;
}

export interface AuthInfo {
  auth_type: 'api-key' | 'none' | string;
}

export interface AuthCheck {
  valid: boolean;
  auth_type?: string;
  actor?: string;
  actor_type?: string;
  admin?: boolean;
}

/** Any resource row. */
export type Row = { id: string } & Record<string, unknown>;
