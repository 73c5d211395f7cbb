//! `ironidc user …`: the first operator steps without the API — add users,
//! list them, set passwords and roles — on the same database `serve` uses
//! (same settings, same flags and environment).

use std::io::{BufRead, IsTerminal};

use ironidc_core::accounts::{Page, UserFilter};
use ironidc_core::service::UserInput;
use ironidc_core::{Actor, Services};

use crate::serve::{open_services, ServeArgs};

#[derive(clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
    #[command(flatten)]
    settings: Box<ServeArgs>,
}

#[derive(clap::Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from the terminal (twice) or from
    /// one line of standard input.
    Add {
        account: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        /// The user's id in the billing system.
        #[arg(long)]
        userid: Option<String>,
        /// Role codes [default: Customer].
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Create the user disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List users.
    List {
        /// Only accounts containing this text.
        #[arg(long)]
        account: Option<String>,
    },
    /// Set a user's password (read like `add`); their sessions end.
    Passwd { account: String },
    /// Replace a user's roles with the given role codes.
    Role {
        account: String,
        #[arg(required = true)]
        roles: Vec<String>,
    },
}

pub fn run(args: UserArgs) -> Result<(), Box<dyn std::error::Error>> {
    crate::serve::init_logging("warn");
    let config = args.settings.resolve()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (services, _proxy) = open_services(&config).await?;
        if let Some(password) = services
            .init_accounts(config.access.admin_password.as_deref())
            .await?
        {
            println!("ironidc: generated password of user administrator (shown once, store it now): {password}");
        }
        execute(&services, args.command).await
    })
}

async fn execute(
    services: &Services,
    command: UserCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    let actor = Actor::system();
    match command {
        UserCommand::Add {
            account,
            name,
            email,
            phone,
            userid,
            roles,
            disabled,
        } => {
            let roles = if roles.is_empty() {
                None
            } else {
                Some(role_ids(services, &actor, &roles).await?)
            };
            let password = read_password(&format!("password for {account}"))?;
            let user = services
                .create_user(
                    &actor,
                    UserInput {
                        name: name.unwrap_or_else(|| account.clone()),
                        account,
                        password,
                        email,
                        phone,
                        external_id: userid,
                        enabled: !disabled,
                        remark: None,
                        roles,
                        quota: None,
                    },
                )
                .await?;
            println!("added user {} (id {})", user.account, user.id);
        }
        UserCommand::List { account } => {
            let filter = UserFilter {
                account,
                page: Page {
                    offset: 0,
                    limit: u32::MAX,
                },
                ..UserFilter::default()
            };
            let (users, total) = services.list_users(&actor, &filter).await?;
            let (roles, _) = services.list_roles(&actor, None, None).await?;
            println!(
                "{:>5}  {:<24} {:<24} {:<9} ROLES",
                "ID", "ACCOUNT", "NAME", "STATUS"
            );
            for u in users {
                let codes: Vec<&str> = u
                    .roles
                    .iter()
                    .filter_map(|id| roles.iter().find(|r| r.id == *id).map(|r| r.code.as_str()))
                    .collect();
                let status = match (u.status, u.locked) {
                    (false, _) => "disabled",
                    (true, true) => "locked",
                    (true, false) => "enabled",
                };
                println!(
                    "{:>5}  {:<24} {:<24} {:<9} {}",
                    u.id,
                    u.account,
                    u.name,
                    status,
                    codes.join(",")
                );
            }
            println!("{total} user(s)");
        }
        UserCommand::Passwd { account } => {
            let user = services.find_user(&actor, &account).await?;
            let password = read_password(&format!("new password for {}", user.account))?;
            services
                .set_user_password(&actor, user.id, &password)
                .await?;
            println!(
                "password of {} changed; their sessions are ended",
                user.account
            );
        }
        UserCommand::Role { account, roles } => {
            let user = services.find_user(&actor, &account).await?;
            let ids = role_ids(services, &actor, &roles).await?;
            services.set_user_roles(&actor, user.id, &ids).await?;
            println!("{} now has roles {}", user.account, roles.join(","));
        }
    }
    Ok(())
}

/// Role ids of role codes (case-insensitive).
async fn role_ids(
    services: &Services,
    actor: &Actor,
    codes: &[String],
) -> Result<Vec<i64>, Box<dyn std::error::Error>> {
    let (roles, _) = services.list_roles(actor, None, None).await?;
    codes
        .iter()
        .map(|code| {
            roles
                .iter()
                .find(|r| r.code.eq_ignore_ascii_case(code))
                .map(|r| r.id)
                .ok_or_else(|| {
                    let known: Vec<&str> = roles.iter().map(|r| r.code.as_str()).collect();
                    format!("no role {code} (roles: {})", known.join(", ")).into()
                })
        })
        .collect()
}

/// From the terminal (asked twice), or one line of standard input.
fn read_password(what: &str) -> Result<String, Box<dyn std::error::Error>> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("{what}: "))?;
        let second = rpassword::prompt_password(format!("{what} (again): "))?;
        if first != second {
            return Err("the passwords differ".into());
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(password)
}
