// The console's shell: nothing but the log-in form until a credential is accepted, then
// the navigation and the page the URL names.

import type { ReactNode } from 'react';
import { Layout, type NavItem } from './components/Layout';
import { Alerts } from './pages/Alerts';
import { CollectionDetail } from './pages/CollectionDetail';
import { Collections } from './pages/Collections';
import { Dashboard } from './pages/Dashboard';
import { Keys } from './pages/Keys';
import { Login } from './pages/Login';
import { Search } from './pages/Search';
import { Users } from './pages/Users';
import { Workers } from './pages/Workers';
import { Link, useLocation } from './router';
import { useSession } from './session';

export const NAV: NavItem[] = [
  { to: '/', label: 'Dashboard' },
  { to: '/collections', label: 'Collections' },
  { to: '/search', label: 'Search' },
  { to: '/workers', label: 'Workers', admin: true },
  { to: '/alerts', label: 'Alerts', admin: true },
  { to: '/keys', label: 'API keys' },
  { to: '/users', label: 'Users' },
];

function page(path: string, query: URLSearchParams): ReactNode {
  const segments = path.split('/').filter(Boolean).map(decodeURIComponent);
  switch (segments[0] ?? '') {
    case '':
      return <Dashboard />;
    case 'collections':
      return segments[1] ? <CollectionDetail key={segments[1]} name={segments[1]} /> : <Collections />;
    case 'search':
      return <Search initialCollection={query.get('collection') ?? ''} />;
    case 'workers':
      return <Workers />;
    case 'alerts':
      return <Alerts />;
    case 'keys':
      return <Keys />;
    case 'users':
      return <Users />;
    default:
      return (
        <section>
          <h2>Not found</h2>
          <p>
            The console has no page at <code>{path}</code>. <Link to="/">Go to the dashboard.</Link>
          </p>
        </section>
      );
  }
}

export function App() {
  const session = useSession();
  const { path, query } = useLocation();
  if (!session.me) return <Login />;
  return (
    <Layout nav={NAV} path={path}>
      {page(path, query)}
    </Layout>
  );
}
