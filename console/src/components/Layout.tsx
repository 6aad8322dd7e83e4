import type { ReactNode } from 'react';
import { Link } from '../router';
import { useSession } from '../session';

export interface NavItem {
  to: string;
  label: string;
  /** Shown to admins only (the API refuses the others). */
  admin?: boolean;
}

function current(item: NavItem, path: string): boolean {
  return item.to === '/' ? path === '/' : path === item.to || path.startsWith(`${item.to}/`);
}

/** The header (who is signed in, sign-out), the navigation, and the page. */
export function Layout({ nav, path, children }: { nav: NavItem[]; path: string; children: ReactNode }) {
  const { me, isAdmin, credentialKind, logout } = useSession();
  return (
    <div className="shell">
      <header className="topbar">
        <Link to="/" className="brand">
          Vectron <span>console</span>
        </Link>
        <div className="who" data-testid="who">
          <span>{me?.principal}</span>
          <span className="badge neutral">{me?.scope}</span>
          <span className="muted small">{credentialKind === 'key' ? 'API key' : 'session'}</span>
          <button type="button" onClick={() => void logout()}>
            Sign out
          </button>
        </div>
      </header>
      <nav className="sidebar" aria-label="Main">
        {nav
          .filter((item) => isAdmin || !item.admin)
          .map((item) => (
            <Link key={item.to} to={item.to} className={current(item, path) ? 'current' : undefined} aria-current={current(item, path) ? 'page' : undefined}>
              {item.label}
            </Link>
          ))}
      </nav>
      <main className="content">{children}</main>
    </div>
  );
}
