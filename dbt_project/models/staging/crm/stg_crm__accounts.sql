with source as (
    {{ latest_version(source('crm', 'accounts'), 'account_id', 'updated_at') }}
),

renamed as (
    select
        account_id as crm_account_id,
        account_name,
        account_type,
        country_code,
        created_at,
        updated_at,
        is_deleted
    from source
)

select * from renamed
