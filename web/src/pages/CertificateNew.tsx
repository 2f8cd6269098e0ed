import { useQueryClient } from '@tanstack/react-query';
import { useApi, useServerDoc } from '../api/context';
import type { Certificate } from '../api/types';
import { navigate } from '../lib/router';
import { formSchema } from '../lib/resources';
import { initialValues } from '../lib/schema';
import { ResourceForm } from '../components/ResourceForm';
import { ErrorBox, PageHeader, Panel, Spinner, useToast } from '../components/ui';

export function CertificateNew() {
  const api = useApi();
  const qc = useQueryClient();
  const toast = useToast();
  const doc = useServerDoc();
  if (doc.isLoading) return <Spinner />;
  if (doc.isError) return <ErrorBox error={doc.error} what="the certificate schema" />;
  const schema = formSchema(doc.data?.schemas.Certificate, {
    includeId: true,
    order: ['name', 'common_name', 'sans', 'issuer_id', 'profile_id', 'environment', 'renewal_policy_id', 'owner_id', 'team_id', 'tags'],
    overrides: {
      name: { 'x-placeholder': 'api-prod' },
      common_name: { 'x-placeholder': 'api.example.com' },
      sans: { 'x-placeholder': 'api.example.com, www.example.com' },
      issuer_id: { title: 'Issuer', default: 'iss-local', description: 'Issuance starts as soon as the certificate is saved.' },
      profile_id: { title: 'Profile' },
      renewal_policy_id: { title: 'Renewal policy' },
      owner_id: { title: 'Owner' },
      team_id: { title: 'Team' },
      environment: { 'x-placeholder': 'production' },
      tags: { title: 'Tags (JSON)', 'x-placeholder': '{"app": "api"}' },
    },
  });
  return (
    <>
      <PageHeader title="New certificate" subtitle="certctl issues it, deploys it to mapped targets and renews it before expiry." />
      <Panel>
        <ResourceForm
          idPrefix="cert"
          schema={schema}
          initial={initialValues(schema)}
          mode="create"
          submitLabel="Create certificate"
          onCancel={() => navigate('/certificates')}
          onSubmit={async (payload) => {
            const cert = await api.post<Certificate>('/api/v1/certificates', payload);
            await qc.invalidateQueries({ queryKey: ['certificates'] });
            toast(`Created ${cert.name}; issuance started.`);
            navigate(`/certificates/${encodeURIComponent(cert.id)}`, { replace: true });
          }}
        />
      </Panel>
    </>
  );
}
