import { useState } from 'react';
import { Badge } from '../components/Badge';
import { ErrorBox } from '../components/ErrorBox';
import { ago, formatTime } from '../format';
import { useAction, useResource } from '../hooks';
import { useApi } from '../session';
import type { Alert } from '../types';

function ResolveButton({ alert, onDone }: { alert: Alert; onDone: () => void }) {
  const api = useApi();
  const action = useAction();
  return (
    <>
      <button
        type="button"
        disabled={action.busy}
        onClick={() =>
          void action.run(async () => {
            await api.resolveAlert(alert.id);
            onDone();
          })
        }
      >
        Resolve
      </button>
      <ErrorBox error={action.error} />
    </>
  );
}

/** The placement driver's alerts (worker down, shards under-replicated or leaderless, …); resolve. */
export function Alerts() {
  const api = useApi();
  const [all, setAll] = useState(false);
  const alerts = useResource(() => api.alerts(all), [api, all], 5000);
  return (
    <section>
      <div className="page-head">
        <h2>Alerts</h2>
        <div className="toolbar">
          <label className="check">
            <input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} /> resolved ones too
          </label>
          <button type="button" onClick={alerts.reload} disabled={alerts.loading}>
            Refresh
          </button>
        </div>
      </div>
      <p className="muted small">Alerts resolve by themselves when their condition ends; resolve one by hand once it is dealt with.</p>
      <ErrorBox error={alerts.error} />
      {alerts.data?.length === 0 && <p className="muted">{all ? 'No alerts.' : 'No open alerts.'}</p>}
      {alerts.data && alerts.data.length > 0 && (
        <table aria-label="Alerts">
          <thead>
            <tr>
              <th>id</th>
              <th>kind</th>
              <th>subject</th>
              <th>message</th>
              <th>raised</th>
              <th>state</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {alerts.data.map((a) => (
              <tr key={a.id} data-testid={`alert-${a.id}`}>
                <td>{a.id}</td>
                <td>
                  <code>{a.kind}</code>
                </td>
                <td>{a.subject}</td>
                <td>{a.message}</td>
                <td title={formatTime(a.raised_at_ms)}>{ago(a.raised_at_ms)}</td>
                <td>
                  {a.resolved_at_ms ? (
                    <span title={formatTime(a.resolved_at_ms)}>
                      <Badge value="resolved" />
                    </span>
                  ) : (
                    <Badge value="open" />
                  )}
                </td>
                <td className="row-actions">{!a.resolved_at_ms && <ResolveButton alert={a} onDone={alerts.reload} />}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
