import { useState, type ReactNode } from 'react';
import { useAction } from '../hooks';
import { ErrorBox } from './ErrorBox';
import { Modal } from './Modal';

interface Props {
  /** The button's text. */
  label: string;
  /** The dialog's title and message. */
  title: string;
  message: ReactNode;
  /** The confirming button's text (default: the label). */
  confirmLabel?: string;
  /** The user must type this to confirm (for what cannot be undone). */
  typeToConfirm?: string;
  danger?: boolean;
  disabled?: boolean;
  /** More inputs in the dialog (e.g. a "force" checkbox). */
  extra?: ReactNode;
  onConfirm: () => Promise<unknown>;
}

/** A button that asks for confirmation in a dialog before it acts; the dialog shows the action's error. */
export function ConfirmButton(props: Props) {
  const [open, setOpen] = useState(false);
  const [typed, setTyped] = useState('');
  const action = useAction();
  const close = () => {
    setOpen(false);
    setTyped('');
    action.clear();
  };
  const confirm = async () => {
    if (await action.run(props.onConfirm)) close();
  };
  const ready = !props.typeToConfirm || typed === props.typeToConfirm;
  return (
    <>
      <button type="button" className={props.danger ? 'danger' : undefined} disabled={props.disabled} onClick={() => setOpen(true)}>
        {props.label}
      </button>
      {open && (
        <Modal title={props.title} onClose={close}>
          <div className="modal-body">{props.message}</div>
          {props.typeToConfirm && (
            <label className="field">
              Type <code>{props.typeToConfirm}</code> to confirm
              <input value={typed} onChange={(e) => setTyped(e.target.value)} autoFocus aria-label="confirmation" />
            </label>
          )}
          {props.extra}
          <ErrorBox error={action.error} />
          <div className="actions">
            <button type="button" onClick={close}>
              Cancel
            </button>
            <button
              type="button"
              className={props.danger ? 'danger' : 'primary'}
              disabled={!ready || action.busy}
              onClick={confirm}
            >
              {action.busy ? 'Working…' : (props.confirmLabel ?? props.label)}
            </button>
          </div>
        </Modal>
      )}
    </>
  );
}
