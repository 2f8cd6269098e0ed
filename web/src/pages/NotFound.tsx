import { Link } from '../lib/router';
import { EmptyState } from '../components/ui';

export function NotFound() {
  return (
    <EmptyState title="Page not found" action={<Link to="/" className="btn primary">Go to the overview</Link>}>
      There is no dashboard page at this address.
    </EmptyState>
  );
}
