import './boot';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { ApiError } from './api/client';
import { ApiProvider } from './api/context';
import { ToastProvider } from './components/ui';
import { App } from './App';
import './styles.css';

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // Client errors (401, 404, validation) do not get better by retrying.
      retry: (count, error) => !(error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) && count < 2,
      staleTime: 5_000,
      refetchOnWindowFocus: true,
    },
  },
});

const stored = (() => {
  try {
    return localStorage.getItem('certctl.theme');
  } catch {
    return null;
  }
})();
document.documentElement.dataset.theme = stored === 'light' ? 'light' : 'dark';

createRoot(document.getElementById('root') as HTMLElement).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <ToastProvider>
        <ApiProvider>
          <App />
        </ApiProvider>
      </ToastProvider>
    </QueryClientProvider>
  </StrictMode>,
);
