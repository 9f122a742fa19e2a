-- The demo's business data: what the exporter's example business queries read.
-- Idempotent, so the demo and the tests can apply it on every start.

create table if not exists orders (
    id bigserial primary key,
    status text not null,
    amount numeric(12, 2) not null check (amount >= 0),
    created_at timestamptz not null default now()
);

create index if not exists orders_created_at on orders (created_at);

create table if not exists jobs (
    id bigserial primary key,
    queue text not null,
    status text not null check (status in ('succeeded', 'failed')),
    started_at timestamptz not null,
    finished_at timestamptz not null,
    error text
);

create index if not exists jobs_finished_at on jobs (finished_at);
